//! Lambda functions packaged as container images: images in use outside ECS.

use crate::moto::{query, unique};
use crate::Fixture;

/// `text` as an `application/x-www-form-urlencoded` value.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Fixture {
    /// A Lambda function packaged as the container image `image_uri`; returns its name. moto
    /// insists on an IAM role Lambda may assume, so one is made first.
    pub async fn image_function(&self, image_uri: &str) -> String {
        let role = unique("role");
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        query(
            "iam",
            &format!(
                "Action=CreateRole&Version=2010-05-08&RoleName={role}&AssumeRolePolicyDocument={}",
                form_encode(policy)
            ),
        );
        let name = unique("fn");
        aws_sdk_lambda::Client::new(&self.direct)
            .create_function()
            .function_name(&name)
            .role(format!("arn:aws:iam::123456789012:role/{role}"))
            .package_type(aws_sdk_lambda::types::PackageType::Image)
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .image_uri(image_uri)
                    .build(),
            )
            .send()
            .await
            .expect("create function");
        name
    }
}

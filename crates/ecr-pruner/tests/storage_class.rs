//! The ECR adapter's storage-class change (archive, restore) against a stub of
//! UpdateImageStorageClass (moto does not implement it), and the listing's status filter.

use lifecycle_domain::prune::{ImageStatus, StorageClass};
use lifecycle_ports::{Failure, Registry};
use lifecycle_testkit::ecr_stub::{EcrStub, StubAnswer, TARGET};
use serde_json::json;

fn digest(n: u32) -> String {
    format!("sha256:{n:064x}")
}

#[tokio::test]
async fn archive_and_restore_are_update_image_storage_class_calls() {
    let stub = EcrStub::start();
    let registry = stub.registry().await;
    let archived = registry
        .set_storage_class("team/app", &digest(1), StorageClass::Archive)
        .await
        .unwrap();
    assert_eq!(archived, ImageStatus::Archived);
    let restored = registry
        .set_storage_class("team/app", &digest(2), StorageClass::Standard)
        .await
        .unwrap();
    assert_eq!(restored, ImageStatus::Activating);
    let requests = stub.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.target == TARGET));
    assert_eq!(
        requests[0].body,
        json!({"repositoryName": "team/app", "imageId": {"imageDigest": digest(1)}, "targetStorageClass": "ARCHIVE"})
    );
    assert_eq!(requests[1].body["targetStorageClass"], "STANDARD");
}

#[tokio::test]
async fn throttling_and_server_errors_are_retryable_and_refusals_are_not() {
    let stub = EcrStub::start();
    let registry = stub.registry().await;
    let cases = [
        (
            StubAnswer::Error(400, "ThrottlingException", "Rate exceeded"),
            Failure::Retryable,
        ),
        (
            StubAnswer::Error(500, "ServerException", "oops"),
            Failure::Retryable,
        ),
        (
            StubAnswer::Error(
                400,
                "ImageStorageClassUpdateNotSupportedException",
                "already archived",
            ),
            Failure::Permanent,
        ),
        (
            StubAnswer::Error(400, "ImageNotFoundException", "gone"),
            Failure::Permanent,
        ),
        (
            StubAnswer::Error(400, "AccessDeniedException", "no"),
            Failure::Permanent,
        ),
        // An answer about another image is no answer about this one: asked again later.
        (StubAnswer::OtherImage(digest(9)), Failure::Retryable),
    ];
    for (answer, failure) in cases {
        stub.answer(answer.clone());
        let err = registry
            .set_storage_class("app", &digest(1), StorageClass::Standard)
            .await
            .unwrap_err();
        assert_eq!(err.failure, failure, "{answer:?}: {err}");
        assert_eq!(err.operation, "ECR UpdateImageStorageClass");
    }
    // One request each: the SDK's retries are off, so each answer reached the adapter.
    assert_eq!(stub.requests().len(), 6);
    // The status ECR reports is the one returned.
    stub.answer(StubAnswer::Status("ACTIVE"));
    let status = registry
        .set_storage_class("app", &digest(1), StorageClass::Standard)
        .await
        .unwrap();
    assert_eq!(status, ImageStatus::Active);
}

/// DescribeImages lists ACTIVE images only unless asked for every status: the adapter asks.
#[tokio::test]
async fn the_image_listing_asks_for_every_status() {
    let stub = EcrStub::start();
    let registry = stub.registry().await;
    // The stub answers nothing but storage-class changes: the listing fails, and says so.
    let err = registry.images("app").await.unwrap_err();
    assert!(
        err.to_string().contains("UnknownOperationException"),
        "{err}"
    );
    let requests = stub.requests();
    assert_eq!(
        requests[0].target,
        "AmazonEC2ContainerRegistry_V20150921.DescribeImages"
    );
    assert_eq!(requests[0].body["filter"], json!({"imageStatus": "ANY"}));
}

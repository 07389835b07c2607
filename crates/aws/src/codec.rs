//! DynamoDB items ⇄ the domain's [`Attributes`]: the only place the SDK's attribute values meet
//! the domain.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::base64;
use lifecycle_domain::record::{Attributes, Value};

pub fn from_item(item: HashMap<String, AttributeValue>) -> Attributes {
    item.into_iter().map(|(k, v)| (k, from_value(v))).collect()
}

pub fn to_item(attributes: &Attributes) -> HashMap<String, AttributeValue> {
    attributes
        .iter()
        .map(|(k, v)| (k.clone(), to_value(v)))
        .collect()
}

pub fn from_value(value: AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => Value::S(s),
        AttributeValue::N(n) => Value::N(n),
        AttributeValue::Bool(b) => Value::Bool(b),
        AttributeValue::Null(b) => Value::Null(b),
        AttributeValue::B(b) => Value::B(base64::encode(b.as_ref())),
        AttributeValue::L(l) => Value::L(l.into_iter().map(from_value).collect()),
        AttributeValue::M(m) => Value::M(m.into_iter().map(|(k, v)| (k, from_value(v))).collect()),
        AttributeValue::Ss(v) => Value::Ss(v),
        AttributeValue::Ns(v) => Value::Ns(v),
        AttributeValue::Bs(v) => Value::Bs(v.iter().map(|b| base64::encode(b.as_ref())).collect()),
        // A type this SDK version does not know: kept as text, never silently dropped.
        other => Value::S(format!("{other:?}")),
    }
}

pub fn to_value(value: &Value) -> AttributeValue {
    let blob =
        |text: &str| Blob::new(base64::decode(text).unwrap_or_else(|_| text.as_bytes().to_vec()));
    match value {
        Value::S(s) => AttributeValue::S(s.clone()),
        Value::N(n) => AttributeValue::N(n.clone()),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Null(b) => AttributeValue::Null(*b),
        Value::B(b) => AttributeValue::B(blob(b)),
        Value::L(l) => AttributeValue::L(l.iter().map(to_value).collect()),
        Value::M(m) => AttributeValue::M(m.iter().map(|(k, v)| (k.clone(), to_value(v))).collect()),
        Value::Ss(v) => AttributeValue::Ss(v.clone()),
        Value::Ns(v) => AttributeValue::Ns(v.clone()),
        Value::Bs(v) => AttributeValue::Bs(v.iter().map(|b| blob(b)).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips() {
        let item = HashMap::from([
            ("s".to_string(), AttributeValue::S("x".into())),
            ("n".to_string(), AttributeValue::N("1.50".into())),
            (
                "b".to_string(),
                AttributeValue::B(Blob::new(vec![0, 255, 7])),
            ),
            ("bool".to_string(), AttributeValue::Bool(false)),
            ("null".to_string(), AttributeValue::Null(true)),
            (
                "m".to_string(),
                AttributeValue::M(HashMap::from([(
                    "l".to_string(),
                    AttributeValue::L(vec![AttributeValue::Ns(vec!["1".into()])]),
                )])),
            ),
            (
                "ss".to_string(),
                AttributeValue::Ss(vec!["a".into(), "b".into()]),
            ),
            (
                "bs".to_string(),
                AttributeValue::Bs(vec![Blob::new(vec![1])]),
            ),
        ]);
        assert_eq!(to_item(&from_item(item.clone())), item);
    }
}

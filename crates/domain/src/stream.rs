//! Which DynamoDB stream records are TTL deletions.

use serde::Serialize;

/// The principal DynamoDB uses for the deletions its TTL process makes.
pub const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";
pub const TTL_IDENTITY_TYPE: &str = "Service";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamRecordKind {
    /// `REMOVE` by the TTL service: the workspace expired.
    TtlDelete,
    /// `REMOVE` by anyone else (the control plane, an operator): not ours to act on.
    UserDelete,
    /// `INSERT` / `MODIFY`.
    NotARemove,
}

/// Classifies a stream record by its `eventName` and `userIdentity` (type, principalId).
pub fn classify(event_name: &str, user_identity: Option<(&str, &str)>) -> StreamRecordKind {
    if event_name != "REMOVE" {
        return StreamRecordKind::NotARemove;
    }
    match user_identity {
        Some((TTL_IDENTITY_TYPE, TTL_PRINCIPAL)) => StreamRecordKind::TtlDelete,
        _ => StreamRecordKind::UserDelete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_service_removes_are_ttl_deletes() {
        let ttl = Some(("Service", "dynamodb.amazonaws.com"));
        assert_eq!(classify("REMOVE", ttl), StreamRecordKind::TtlDelete);
        assert_eq!(classify("REMOVE", None), StreamRecordKind::UserDelete);
        assert_eq!(
            classify("REMOVE", Some(("Service", "lambda.amazonaws.com"))),
            StreamRecordKind::UserDelete
        );
        assert_eq!(
            classify("REMOVE", Some(("User", "dynamodb.amazonaws.com"))),
            StreamRecordKind::UserDelete
        );
        assert_eq!(classify("MODIFY", ttl), StreamRecordKind::NotARemove);
        assert_eq!(classify("remove", ttl), StreamRecordKind::NotARemove);
    }

    proptest! {
        #[test]
        fn nothing_else_is_a_ttl_delete(name in "\\PC{0,10}", ty in "\\PC{0,10}", pr in "\\PC{0,30}") {
            let kind = classify(&name, Some((&ty, &pr)));
            let is_ttl = name == "REMOVE" && ty == TTL_IDENTITY_TYPE && pr == TTL_PRINCIPAL;
            prop_assert_eq!(kind == StreamRecordKind::TtlDelete, is_ttl);
        }
    }
}

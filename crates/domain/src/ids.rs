//! Identifiers that become path components. Validation is the first line of defence for invariant 1
//! ("nothing outside `<EFS_ROOT>/<tenantId>/<workspaceId>` is ever modified"): an id that passes
//! is always exactly one normal path component, never `.`, `..`, empty, or containing `/`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest id the contract allows (`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`): short enough that a
/// trash entry's name, tenant and workspace ids both in it, fits one file name (255 bytes) even in
/// its `.staging+`/`.purging+` form (9 + 20 + 3 + 2 × 100 + 16 = 248 bytes at most).
pub const MAX_ID_LEN: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} {value:?} is {len} bytes long; at most {MAX_ID_LEN} are allowed")]
    TooLong {
        kind: &'static str,
        value: String,
        len: usize,
    },
    #[error("{kind} {value:?} must start with a letter or digit")]
    BadFirst { kind: &'static str, value: String },
    #[error(
        "{kind} {value:?} contains {ch:?}; only letters, digits, '.', '_' and '-' are allowed"
    )]
    BadChar {
        kind: &'static str,
        value: String,
        ch: char,
    },
}

fn validate(kind: &'static str, value: &str) -> Result<(), IdError> {
    let mut chars = value.chars();
    let Some(first) = chars.next() else {
        return Err(IdError::Empty { kind });
    };
    // Cap what an error message echoes back: a hostile id can be megabytes long.
    let shown = || value.chars().take(160).collect::<String>();
    if value.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            kind,
            value: shown(),
            len: value.len(),
        });
    }
    if !first.is_ascii_alphanumeric() {
        return Err(IdError::BadFirst {
            kind,
            value: shown(),
        });
    }
    if let Some(ch) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(IdError::BadChar {
            kind,
            value: shown(),
            ch,
        });
    }
    Ok(())
}

macro_rules! validated_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate($kind, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<std::path::Path> for $name {
            fn as_ref(&self) -> &std::path::Path {
                std::path::Path::new(&self.0)
            }
        }
    };
}

validated_id!(
    /// The DynamoDB partition key of a workspace record, and the leaf directory of its data.
    WorkspaceId,
    "workspaceId"
);
validated_id!(
    /// The tenant that owns a workspace, and the first directory level under `EFS_ROOT`.
    TenantId,
    "tenantId"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_contract_alphabet() {
        for ok in ["a", "ws-1", "A.b_c-d", "0", "a..", &"x".repeat(100)] {
            assert!(WorkspaceId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_hostile_ids_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("..", "must start"),
            (".", "must start"),
            ("../../etc", "must start"),
            ("a/b", "contains '/'"),
            ("a\0b", "contains '\\0'"),
            ("-rf", "must start"),
            ("é", "must start"),
            ("a b", "contains ' '"),
        ];
        for (bad, why) in cases {
            let err = WorkspaceId::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let long = "a".repeat(200);
        assert!(TenantId::parse(long)
            .unwrap_err()
            .to_string()
            .contains("200 bytes"));
    }

    proptest! {
        /// Whatever string arrives, an accepted id is exactly one normal path component.
        #[test]
        fn accepted_ids_are_single_normal_components(s in "\\PC{0,140}|[./a-z-]{0,6}") {
            if let Ok(id) = WorkspaceId::parse(s.clone()) {
                let mut comps = std::path::Path::new(id.as_str()).components();
                prop_assert!(matches!(comps.next(), Some(std::path::Component::Normal(_))));
                prop_assert!(comps.next().is_none());
                prop_assert!(s.len() <= MAX_ID_LEN);
            }
        }
    }
}

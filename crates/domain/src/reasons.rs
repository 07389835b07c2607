//! What was done and why: the vocabularies of audit lines, reports and metrics. Every code is the
//! enum's serde name, so the string a log line carries is derived, never kept in a second table.

use serde::ser::{Impossible, Serialize, Serializer};

/// What was done (or, in a dry run, would have been).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    DeleteAccessPoint,
    MarkOrphanAccessPoint,
    UnmarkAccessPoint,
    MoveToTrash,
    PurgeTrashEntry,
    /// A trash entry archived to the archive bucket (verified) before its purge.
    ArchiveTrashEntry,
    PutBackRecord,
    Skip,
    RejectRecord,
    ExtendExpiry,
    SetExpiry,
    SendNotice,
    DeleteImage,
    /// An image moved to the archive storage class (the prune policy's archive step).
    ArchiveImage,
    /// An archived image moved back to standard storage (it is in use or pinned).
    RestoreImage,
    /// Data moved back out of the trash because its record appeared during the move.
    MoveBack,
    /// The old image written into a trash entry that had none (the sweeper was first).
    CompleteTrashRecord,
}

/// Why. Exactly one per audit line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// DynamoDB TTL deleted the record.
    TtlExpired,
    /// The record exists again (re-created after the TTL delete).
    Recreated,
    /// A running or pending ECS task uses the workspace.
    SkippedInUse,
    /// The record is under hold and must never expire.
    SkippedHold,
    /// The deleted image's own expiry had not passed when it was deleted (or it has none):
    /// whatever deleted it, it was not the TTL expiring this record, so it goes back as it was.
    NotExpired,
    /// The access point belongs to another workspace or file system.
    AccessPointMismatch,
    /// Nothing was there: a redelivery, or already cleaned up.
    AlreadyAbsent,
    /// `TRASH_GRACE_DAYS=0`: purge without a grace period.
    NoGracePeriod,
    /// The record is malformed or names a hostile id; nothing was touched.
    InvalidRecord,
    /// The action failed; see `error`.
    Failed,
    /// A dispatch, an ECS task event or a running task showed activity.
    Activity,
    /// `recompute` re-derived the expiry from the last activity (a tier or status change).
    Recomputed,
    /// `recompute` shortened the expiry: the one path that may.
    RecomputeShortened,
    /// The workspace expires within `EXPIRY_NOTICE_DAYS`.
    ExpiringSoon,
    /// A symlink or a file stands where a tenant or workspace directory must be: never followed,
    /// not retried; an operator looks at it.
    RefusedSymlink,
    /// The trash entry a move would publish is taken by something that is not that move's
    /// finished entry (a link, a file, an empty or record-only directory, or live data is still
    /// there): the data stays in place, the access point too; not retried; an operator looks.
    RefusedTrashEntry,
    /// A record went back (held, in use, not expired) but its data is neither live nor in the
    /// trash: an operator must find out why (a purge that ran first, a restore from backup).
    RecordWithoutData,
    /// A record for the workspace appeared while its data was being moved.
    RecordAppeared,
    /// A later TTL deletion of the same workspace (a newer generation) is in the same batch: it,
    /// not this older image, decides whether a record comes back.
    Superseded,
    /// The workspace id has a record again, under another tenant: it does not own this tenant's
    /// directory, so this tenant's data stays in its trash entry (grace, `lifecycle restore`).
    OtherTenantsRecord,
    /// The sweeper trashed the directory first (as an orphan); its entry now has the record.
    TrashedFirstBySweeper,
    /// The record cannot be read but the workspace is in use: kept alive for the policy's
    /// longest retention until an operator fixes the record.
    InvalidRecordInUse,
}

/// Implements `as_str` (the serde name) for unit-variant enums.
#[macro_export]
macro_rules! serde_codes {
    ($($ty:ty),* $(,)?) => {$(
        impl $ty {
            /// The code as serde writes it (`snake_case`).
            pub fn as_str(self) -> &'static str {
                $crate::reasons::code(&self)
            }
        }
    )*};
}

serde_codes!(Action, Reason);

/// The name serde gives a unit variant (its `rename_all` applied), without allocating.
///
/// # Panics
/// If `value` is not a unit enum variant: a programming error caught by every test that logs.
pub fn code<T: Serialize>(value: &T) -> &'static str {
    value
        .serialize(VariantName)
        .expect("codes are unit enum variants")
}

/// A serializer that only accepts unit variants and returns their names.
struct VariantName;

#[derive(Debug)]
struct NotAUnitVariant;

impl std::fmt::Display for NotAUnitVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a unit enum variant")
    }
}

impl std::error::Error for NotAUnitVariant {}

impl serde::ser::Error for NotAUnitVariant {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        NotAUnitVariant
    }
}

macro_rules! refuse {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {$(
        fn $name(self, $(_: $arg),*) -> Result<Self::Ok, Self::Error> {
            Err(NotAUnitVariant)
        }
    )*};
}

impl Serializer for VariantName {
    type Ok = &'static str;
    type Error = NotAUnitVariant;
    type SerializeSeq = Impossible<&'static str, NotAUnitVariant>;
    type SerializeTuple = Impossible<&'static str, NotAUnitVariant>;
    type SerializeTupleStruct = Impossible<&'static str, NotAUnitVariant>;
    type SerializeTupleVariant = Impossible<&'static str, NotAUnitVariant>;
    type SerializeMap = Impossible<&'static str, NotAUnitVariant>;
    type SerializeStruct = Impossible<&'static str, NotAUnitVariant>;
    type SerializeStructVariant = Impossible<&'static str, NotAUnitVariant>;

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<&'static str, NotAUnitVariant> {
        Ok(variant)
    }

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
    );

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<Self::Ok, Self::Error> {
        Err(NotAUnitVariant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<Self::Ok, Self::Error> {
        Err(NotAUnitVariant)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Self::Ok, Self::Error> {
        Err(NotAUnitVariant)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
        Err(NotAUnitVariant)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Self::Error> {
        Err(NotAUnitVariant)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Self::Error> {
        Err(NotAUnitVariant)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Self::Error> {
        Err(NotAUnitVariant)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        Err(NotAUnitVariant)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Self::Error> {
        Err(NotAUnitVariant)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Self::Error> {
        Err(NotAUnitVariant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_serde_names() {
        assert_eq!(Action::DeleteAccessPoint.as_str(), "delete_access_point");
        assert_eq!(Reason::InvalidRecordInUse.as_str(), "invalid_record_in_use");
        let json = serde_json::to_value(Reason::TtlExpired).unwrap();
        assert_eq!(json, Reason::TtlExpired.as_str());
    }
}

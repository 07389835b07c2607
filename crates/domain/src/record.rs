//! The workspace record: the contract every function shares (README, "The workspace record").

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::ids::{TenantId, WorkspaceId};
use crate::retention::MAX_RETENTION_DAYS;

/// One stored attribute value, in the table's own type system. Serialized as DynamoDB JSON
/// (`{"S": "…"}`), the form a trash entry's `record.json` keeps. Binary values stay base64 text:
/// the domain never looks inside them, it only keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    #[serde(rename = "S")]
    S(String),
    /// A number, as its decimal text (exactly as stored: no float rounding).
    #[serde(rename = "N")]
    N(String),
    #[serde(rename = "BOOL")]
    Bool(bool),
    #[serde(rename = "NULL")]
    Null(bool),
    #[serde(rename = "B")]
    B(String),
    #[serde(rename = "L")]
    L(Vec<Value>),
    #[serde(rename = "M")]
    M(BTreeMap<String, Value>),
    #[serde(rename = "SS")]
    Ss(Vec<String>),
    #[serde(rename = "NS")]
    Ns(Vec<String>),
    #[serde(rename = "BS")]
    Bs(Vec<String>),
}

impl Value {
    /// The plain JSON a typed view deserializes from (numbers as numbers when they are numbers).
    fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::S(s) => J::String(s.clone()),
            // Never read as text: a binary value where a string belongs makes the record invalid.
            Value::B(b) => serde_json::json!({ "B": b }),
            Value::N(n) => n
                .parse::<i64>()
                .map(J::from)
                .ok()
                .or_else(|| {
                    n.parse::<f64>()
                        .ok()
                        .and_then(|f| serde_json::Number::from_f64(f).map(J::Number))
                })
                .unwrap_or_else(|| J::String(n.clone())),
            Value::Bool(b) => J::Bool(*b),
            Value::Null(_) => J::Null,
            Value::L(l) => J::Array(l.iter().map(Value::to_json).collect()),
            Value::M(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Value::Ss(v) | Value::Ns(v) | Value::Bs(v) => {
                J::Array(v.iter().cloned().map(J::String).collect())
            }
        }
    }

    /// A plain JSON value as stored (`None` for JSON null: an absent attribute).
    fn from_json(json: serde_json::Value) -> Option<Value> {
        use serde_json::Value as J;
        Some(match json {
            J::Null => return None,
            J::Bool(b) => Value::Bool(b),
            J::Number(n) => Value::N(n.to_string()),
            J::String(s) => Value::S(s),
            J::Array(a) => Value::L(a.into_iter().filter_map(Value::from_json).collect()),
            J::Object(o) => Value::M(
                o.into_iter()
                    .filter_map(|(k, v)| Some((k, Value::from_json(v)?)))
                    .collect(),
            ),
        })
    }

    /// Equal as the table's `=` compares: numbers by value, everything else exactly, and values
    /// of different types never.
    pub fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::N(x), Value::N(y)) => {
                x == y || matches!((x.parse::<f64>(), y.parse::<f64>()), (Ok(x), Ok(y)) if x == y)
            }
            _ => self == other,
        }
    }
}

/// A record's attributes as stored, every one of them (known or not), so a record written back
/// keeps what other writers put there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Attributes(BTreeMap<String, Value>);

impl Attributes {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    pub fn insert(&mut self, name: impl Into<String>, value: Value) -> Option<Value> {
        self.0.insert(name.into(), value)
    }

    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.0.remove(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter()
    }

    pub fn into_inner(self) -> BTreeMap<String, Value> {
        self.0
    }

    /// A string attribute's text; `None` when absent or not a string.
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.0.get(name) {
            Some(Value::S(s)) => Some(s),
            _ => None,
        }
    }

    /// The record's id as stored, when it is a string (not yet checked as a [`WorkspaceId`]).
    pub fn workspace_id(&self) -> Option<&str> {
        self.text(attr::WORKSPACE_ID)
    }

    /// The record's id, checked; otherwise what was stored (shortened) and why it is no id.
    pub fn record_id(&self) -> Result<WorkspaceId, UnreadableId> {
        match self.workspace_id() {
            Some(raw) => WorkspaceId::parse(raw).map_err(|e| UnreadableId {
                raw: raw.chars().take(160).collect(),
                error: e.to_string(),
            }),
            None => Err(UnreadableId {
                raw: "<no string workspaceId>".to_string(),
                error: "record has no string workspaceId".to_string(),
            }),
        }
    }

    /// Where the record's data lives: its workspace and tenant ids, both present and valid.
    /// `None` when either is missing or hostile: such a record cannot be located safely.
    pub fn location(&self) -> Option<(WorkspaceId, TenantId)> {
        let workspace = WorkspaceId::parse(self.workspace_id()?).ok()?;
        let tenant = TenantId::parse(self.text(attr::TENANT_ID)?).ok()?;
        Some((workspace, tenant))
    }

    /// The expiry the item holds (`expiresAt` as an integral number of epoch seconds), read
    /// from the attribute alone so an otherwise unreadable record still has it. `None` when it
    /// is absent or not such a number.
    pub fn stored_expiry(&self) -> Option<i64> {
        match self.get(attr::EXPIRES_AT) {
            Some(Value::N(n)) => n.trim().parse::<i64>().ok(),
            _ => None,
        }
    }

    /// Whether the record is, or may be, held: `hold` is true or holds anything but `false`
    /// (an unreadable hold, `NULL` included, might be a hold). Only absent and `false` are not.
    pub fn may_be_held(&self) -> bool {
        !matches!(self.get(attr::HOLD), None | Some(Value::Bool(false)))
    }

    /// The access point the record names, if it names a valid one (`fsap-` and hex digits): an
    /// id that is not one is never sent to EFS.
    pub fn access_point_id(&self) -> Option<&str> {
        self.text(attr::ACCESS_POINT_ID)
            .filter(|ap| crate::access_point::is_access_point_id(ap))
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )
    }
}

/// A stored `workspaceId` that is not a usable id: its text (at most 160 characters, or a
/// placeholder when it is absent or not a string) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableId {
    pub raw: String,
    pub error: String,
}

/// Records by their stored id, for looking up what a batch read returned. A record without a
/// string id is left out: no lookup by id could find it.
pub fn by_stored_id(records: impl IntoIterator<Item = Attributes>) -> HashMap<String, Attributes> {
    records
        .into_iter()
        .filter_map(|record| Some((record.workspace_id()?.to_string(), record)))
        .collect()
}

impl<K: Into<String>> FromIterator<(K, Value)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl From<&WorkspaceRecord> for Attributes {
    /// The record as it is stored (absent options are absent attributes).
    fn from(record: &WorkspaceRecord) -> Self {
        let json = serde_json::to_value(record).expect("a record always serializes");
        let serde_json::Value::Object(fields) = json else {
            unreachable!("a record serializes as an object")
        };
        fields
            .into_iter()
            .filter_map(|(k, v)| Some((k, Value::from_json(v)?)))
            .collect()
    }
}

impl From<BTreeMap<String, Value>> for Attributes {
    fn from(map: BTreeMap<String, Value>) -> Self {
        Self(map)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Free,
    Pro,
    Enterprise,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionStatus {
    Active,
    Suspended,
    Cancelled,
}

/// Attribute names, in one place because adapters build expressions from them.
pub mod attr {
    pub const WORKSPACE_ID: &str = "workspaceId";
    pub const TENANT_ID: &str = "tenantId";
    pub const USER_ID: &str = "userId";
    pub const TIER: &str = "tier";
    pub const SUBSCRIPTION_STATUS: &str = "subscriptionStatus";
    pub const LAST_ACTIVITY_AT: &str = "lastActivityAt";
    pub const EXPIRES_AT: &str = "expiresAt";
    pub const RETENTION_DAYS: &str = "retentionDays";
    pub const ACCESS_POINT_ID: &str = "accessPointId";
    pub const HOLD: &str = "hold";
    pub const NOTICE_SENT_FOR: &str = "noticeSentFor";
}

/// A record's `retentionDays` override must lie in this range (the policy's own bounds).
pub const RETENTION_DAYS_RANGE: std::ops::RangeInclusive<i64> = 1..=MAX_RETENTION_DAYS as i64;
/// Epoch seconds a record may carry: not negative, and not past the year 9999 (which catches
/// milliseconds written where seconds belong: such an expiry would never lapse).
pub const EPOCH_SECONDS_RANGE: std::ops::RangeInclusive<i64> = 0..=253_402_300_799;

/// The attributes the project understands. Attributes it does not know stay in [`StoredRecord::item`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceRecord {
    pub workspace_id: WorkspaceId,
    pub tenant_id: TenantId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub tier: Tier,
    pub subscription_status: SubscriptionStatus,
    /// Epoch seconds.
    pub last_activity_at: i64,
    /// Epoch seconds; the table's TTL attribute. Absent on held workspaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_point_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hold: bool,
    /// The `expiresAt` an expiry notice was last sent for (heartbeat's own bookkeeping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice_sent_for: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    #[error("record has no {0} attribute")]
    MissingKey(&'static str),
    #[error("record {id:?} is invalid: {message}")]
    Invalid { id: String, message: String },
}

/// A record as stored: the typed view plus every attribute, so writing it back keeps them all.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub record: WorkspaceRecord,
    pub attributes: Attributes,
}

impl StoredRecord {
    pub fn parse(attributes: Attributes) -> Result<Self, RecordError> {
        let id = match attributes.get(attr::WORKSPACE_ID) {
            Some(Value::S(s)) => s.clone(),
            Some(_) => String::from("<not a string>"),
            None => return Err(RecordError::MissingKey(attr::WORKSPACE_ID)),
        };
        let invalid = |message: String| RecordError::Invalid {
            id: id.chars().take(160).collect(),
            message,
        };
        check_numbers(&attributes).map_err(invalid)?;
        let record: WorkspaceRecord =
            serde_json::from_value(attributes.to_json()).map_err(|e| invalid(e.to_string()))?;
        if let Some(ap) = &record.access_point_id {
            if !crate::access_point::is_access_point_id(ap) {
                return Err(invalid(format!(
                    "{}: {:?} is not an access point id (fsap-…)",
                    attr::ACCESS_POINT_ID,
                    ap.chars().take(64).collect::<String>()
                )));
            }
        }
        Ok(Self { record, attributes })
    }

    /// The stored attributes with `expiresAt` replaced (or removed when `None`), every other kept.
    pub fn with_expiry(&self, expires_at: Option<i64>) -> Attributes {
        self.attributes.with_expiry(expires_at)
    }
}

impl Attributes {
    /// These attributes with `expiresAt` replaced (or removed when `None`), every other kept.
    pub fn with_expiry(&self, expires_at: Option<i64>) -> Attributes {
        let mut attributes = self.clone();
        match expires_at {
            Some(at) => attributes.insert(attr::EXPIRES_AT, Value::N(at.to_string())),
            None => attributes.remove(attr::EXPIRES_AT),
        };
        attributes
    }
}

/// The numbers of a record, checked before they are trusted: a whole number of the right range,
/// so an out-of-range override or a negative or absurd time makes the record invalid instead of
/// silently doing nothing (an override of 0 days "extends" to the same instant forever).
fn check_numbers(item: &Attributes) -> Result<(), String> {
    let checks = [
        (attr::LAST_ACTIVITY_AT, EPOCH_SECONDS_RANGE),
        (attr::EXPIRES_AT, EPOCH_SECONDS_RANGE),
        (attr::NOTICE_SENT_FOR, EPOCH_SECONDS_RANGE),
        (attr::RETENTION_DAYS, RETENTION_DAYS_RANGE),
    ];
    for (name, range) in checks {
        let text = match item.get(name) {
            None => continue,
            Some(Value::N(text)) => text,
            Some(_) => return Err(format!("{name} is not a number")),
        };
        let value: i64 = text
            .parse()
            .map_err(|_| format!("{name}: {text:?} is not a whole number"))?;
        if !range.contains(&value) {
            return Err(format!(
                "{name}: {value} is out of range {}..={}",
                range.start(),
                range.end()
            ));
        }
    }
    Ok(())
}

/// What can still be read of a record that does not parse as a whole: enough to keep a workspace
/// in use alive, never enough to decide anything else about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub last_activity_at: i64,
    pub expires_at: i64,
    pub hold: bool,
}

impl Lifetime {
    /// `None` unless `lastActivityAt` and `expiresAt` are readable epoch seconds and `hold` is
    /// absent or a boolean (an unreadable hold might be a hold).
    pub fn read(item: &Attributes) -> Option<Self> {
        let time = |name: &str| match item.get(name) {
            Some(Value::N(text)) => text
                .parse::<i64>()
                .ok()
                .filter(|t| EPOCH_SECONDS_RANGE.contains(t)),
            _ => None,
        };
        let hold = match item.get(attr::HOLD) {
            None => false,
            Some(Value::Bool(hold)) => *hold,
            Some(_) => return None,
        };
        Some(Self {
            last_activity_at: time(attr::LAST_ACTIVITY_AT)?,
            expires_at: time(attr::EXPIRES_AT)?,
            hold,
        })
    }
}

/// The stored values a decision read, attribute by attribute (`None`: the attribute was absent).
/// A conditional write built on them lands only if each is still exactly what was read, so no
/// write planned on a stale read lands (ARCHITECTURE.md, "Invariants", 7). Conditioned on the inputs rather
/// than on a version attribute: the platform's control plane writes records too and bumps none.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed(Vec<(&'static str, Option<Value>)>);

/// What a plan over a record reads: [`crate::retention::RetentionPolicy`] and the planners in
/// [`crate::activity`] look at these and nothing else.
const PLAN_INPUTS: &[&str] = &[
    attr::TIER,
    attr::SUBSCRIPTION_STATUS,
    attr::RETENTION_DAYS,
    attr::HOLD,
    attr::EXPIRES_AT,
    attr::LAST_ACTIVITY_AT,
];

impl Observed {
    fn of(item: &Attributes, names: &[&'static str]) -> Self {
        Self(names.iter().map(|n| (*n, item.get(n).cloned())).collect())
    }

    /// The inputs of an expiry plan (touch, recompute).
    pub fn plan_inputs(item: &Attributes) -> Self {
        Self::of(item, PLAN_INPUTS)
    }

    /// The inputs of an expiry notice: the plan's, what the notice carries, and the claim itself.
    pub fn notice_inputs(item: &Attributes) -> Self {
        let mut names = PLAN_INPUTS.to_vec();
        names.extend([attr::TENANT_ID, attr::USER_ID, attr::NOTICE_SENT_FOR]);
        Self::of(item, &names)
    }

    /// Every attribute the project knows: for a record it cannot parse, "unchanged" means all.
    pub fn known(item: &Attributes) -> Self {
        let mut names = PLAN_INPUTS.to_vec();
        names.extend([
            attr::TENANT_ID,
            attr::USER_ID,
            attr::ACCESS_POINT_ID,
            attr::NOTICE_SENT_FOR,
        ]);
        Self::of(item, &names)
    }

    pub fn values(&self) -> &[(&'static str, Option<Value>)] {
        &self.0
    }

    /// Whether `item` still holds exactly these values, compared as DynamoDB's `=` compares
    /// (numbers by value, everything else exactly; a different type is never equal).
    pub fn matches(&self, item: &Attributes) -> bool {
        self.0
            .iter()
            .all(|(name, expected)| match (expected, item.get(name)) {
                (None, None) => true,
                (Some(a), Some(b)) => a.same_as(b),
                _ => false,
            })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn item(pairs: &[(&str, Value)]) -> Attributes {
        pairs.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    fn s(v: &str) -> Value {
        Value::S(v.into())
    }
    fn n(v: i64) -> Value {
        Value::N(v.to_string())
    }

    fn base() -> Vec<(&'static str, Value)> {
        vec![
            ("workspaceId", s("ws-1")),
            ("tenantId", s("acme")),
            ("tier", s("pro")),
            ("subscriptionStatus", s("active")),
            ("lastActivityAt", n(1_700_000_000)),
            ("expiresAt", n(1_702_592_000)),
        ]
    }

    #[test]
    fn parses_and_keeps_unknown_attributes() {
        let mut pairs = base();
        pairs.push(("sizeBytes", n(42)));
        pairs.push(("hold", Value::Bool(false)));
        let stored = StoredRecord::parse(item(&pairs)).unwrap();
        assert_eq!(stored.record.tier, Tier::Pro);
        assert_eq!(stored.record.expires_at, Some(1_702_592_000));
        let back = stored.with_expiry(Some(5));
        assert_eq!(back.get("sizeBytes"), Some(&n(42)));
        assert_eq!(back.get("expiresAt"), Some(&n(5)));
        assert!(stored.with_expiry(None).get("expiresAt").is_none());
    }

    #[test]
    fn attributes_keep_the_trash_record_format() {
        let mut pairs = base();
        pairs.push(("hold", Value::Bool(false)));
        pairs.push(("blob", Value::B("AP8H".into())));
        let stored = item(&pairs);
        let json = serde_json::to_value(&stored).unwrap();
        assert_eq!(json["workspaceId"], serde_json::json!({"S": "ws-1"}));
        assert_eq!(json["expiresAt"], serde_json::json!({"N": "1702592000"}));
        assert_eq!(json["hold"], serde_json::json!({"BOOL": false}));
        let back: Attributes = serde_json::from_value(json).unwrap();
        assert_eq!(back, stored);
        let record = StoredRecord::parse(stored).unwrap().record;
        let written = Attributes::from(&record);
        assert_eq!(StoredRecord::parse(written).unwrap().record, record);
    }

    #[test]
    fn unknown_tier_is_an_error_naming_the_record() {
        let mut pairs = base();
        pairs[2] = ("tier", s("platinum"));
        let err = StoredRecord::parse(item(&pairs)).unwrap_err().to_string();
        assert!(err.contains("ws-1") && err.contains("platinum"), "{err}");
    }

    #[test]
    fn hostile_id_is_an_error() {
        let mut pairs = base();
        pairs[0] = ("workspaceId", s("../.."));
        let err = StoredRecord::parse(item(&pairs)).unwrap_err().to_string();
        assert!(err.contains("must start"), "{err}");
        assert_eq!(
            StoredRecord::parse(item(&pairs[1..])).unwrap_err(),
            RecordError::MissingKey("workspaceId")
        );
    }

    #[test]
    fn observed_values_match_as_dynamodb_compares() {
        let stored = item(&base());
        let observed = Observed::plan_inputs(&stored);
        assert!(observed.matches(&stored));
        let absent = |name: &str| {
            observed
                .values()
                .iter()
                .any(|(n, v)| *n == name && v.is_none())
        };
        assert!(absent("hold") && absent("retentionDays"));
        // Numbers compare by value; anything else exactly, and a different type never matches.
        let mut same = base();
        same[4] = ("lastActivityAt", Value::N("1700000000.0".into()));
        assert!(observed.matches(&item(&same)));
        for (i, changed) in [
            (2, s("enterprise")),
            (3, s("cancelled")),
            (4, n(1_700_000_001)),
            (5, s("1702592000")),
        ] {
            let mut pairs = base();
            pairs[i].1 = changed;
            assert!(!observed.matches(&item(&pairs)), "{:?}", pairs[i]);
        }
        let mut held = base();
        held.push(("hold", Value::Bool(false)));
        assert!(!observed.matches(&item(&held)), "absent is not false");
    }

    #[test]
    fn ids_hold_and_access_point_are_read_as_stored() {
        let record = item(&base());
        assert_eq!(record.record_id().unwrap().as_str(), "ws-1");
        let (workspace, tenant) = record.location().unwrap();
        assert_eq!((workspace.as_str(), tenant.as_str()), ("ws-1", "acme"));
        let hostile = item(&[("workspaceId", s("../..")), ("tenantId", s("acme"))]);
        let e = hostile.record_id().unwrap_err();
        assert_eq!(e.raw, "../..");
        assert!(e.error.contains("must start"), "{e:?}");
        assert_eq!(hostile.location(), None);
        let no_tenant = item(&[("workspaceId", s("ws-1")), ("tenantId", n(1))]);
        assert_eq!(no_tenant.location(), None);
        let number_id = item(&[("workspaceId", n(7))]);
        assert_eq!(
            number_id.record_id().unwrap_err().error,
            "record has no string workspaceId"
        );
        let long = item(&[("workspaceId", s(&"w".repeat(500)))]);
        assert_eq!(long.record_id().unwrap_err().raw.len(), 160);

        for (hold, held) in [
            (None, false),
            (Some(Value::Bool(false)), false),
            (Some(Value::Null(true)), true),
            (Some(Value::Bool(true)), true),
            (Some(s("yes")), true),
            (Some(n(0)), true),
        ] {
            let mut pairs = base();
            pairs.extend(hold.clone().map(|h| ("hold", h)));
            assert_eq!(item(&pairs).may_be_held(), held, "{hold:?}");
        }
        let mut pairs = base();
        assert_eq!(item(&pairs).access_point_id(), None);
        pairs.push(("accessPointId", s("")));
        assert_eq!(item(&pairs).access_point_id(), None);
        pairs.pop();
        pairs.push(("accessPointId", s("fsap-1")));
        assert_eq!(item(&pairs).access_point_id(), Some("fsap-1"));
        // An id that is not one is never handed to EFS.
        pairs.pop();
        pairs.push(("accessPointId", s("fsap-../../x")));
        assert_eq!(item(&pairs).access_point_id(), None);
    }

    #[test]
    fn a_binary_value_where_a_string_belongs_makes_the_record_invalid() {
        let mut pairs = base();
        pairs.push(("userId", Value::B("dXNlcg==".into())));
        let err = StoredRecord::parse(item(&pairs)).unwrap_err().to_string();
        assert!(err.contains("ws-1"), "{err}");
        // Binary attributes the project does not read are kept as they are.
        let mut pairs = base();
        pairs.push(("avatar", Value::B("dXNlcg==".into())));
        let stored = StoredRecord::parse(item(&pairs)).unwrap();
        assert_eq!(
            stored.attributes.get("avatar"),
            Some(&Value::B("dXNlcg==".into()))
        );
    }

    #[test]
    fn records_are_found_by_their_stored_id() {
        let records = vec![
            item(&base()),
            item(&[("workspaceId", n(7))]),
            item(&[("workspaceId", s("../.."))]),
        ];
        let found = by_stored_id(records);
        assert_eq!(found.len(), 2);
        assert!(found.contains_key("ws-1") && found.contains_key("../.."));
    }

    #[test]
    fn lifetime_reads_times_of_a_record_that_does_not_parse() {
        let mut pairs = base();
        pairs[2] = ("tier", s("platinum"));
        assert_eq!(
            Lifetime::read(&item(&pairs)),
            Some(Lifetime {
                last_activity_at: 1_700_000_000,
                expires_at: 1_702_592_000,
                hold: false
            })
        );
        pairs.push(("hold", s("yes")));
        assert_eq!(Lifetime::read(&item(&pairs)), None, "a hold we cannot read");
        let mut pairs = base();
        pairs[5] = ("expiresAt", n(-1));
        assert_eq!(Lifetime::read(&item(&pairs)), None);
    }

    #[test]
    fn out_of_range_values_make_the_record_invalid_naming_the_field() {
        let cases: &[(&str, Value, &str)] = &[
            ("retentionDays", n(0), "retentionDays"),
            ("retentionDays", n(100_000), "retentionDays"),
            ("retentionDays", n(-1), "retentionDays"),
            ("lastActivityAt", n(-5), "lastActivityAt"),
            // Milliseconds instead of seconds: an expiry in the year 55,000 never lapses.
            ("expiresAt", n(1_702_592_000_000), "expiresAt"),
            ("noticeSentFor", n(-1), "noticeSentFor"),
            ("accessPointId", s("../fsap-1"), "accessPointId"),
        ];
        for (name, value, expected) in cases {
            let mut pairs = base();
            pairs.retain(|(k, _)| k != name);
            pairs.push((*name, value.clone()));
            let err = StoredRecord::parse(item(&pairs))
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("ws-1") && err.contains(expected),
                "{name}: {err}"
            );
        }
        let mut pairs = base();
        pairs.push(("retentionDays", n(3650)));
        pairs.push(("accessPointId", s("fsap-0a1b2c3d4e5f60718")));
        let stored = StoredRecord::parse(item(&pairs)).unwrap();
        assert_eq!(stored.record.retention_days, Some(3650));
    }
}

//! Workspace records as the control plane writes them, stored in and read from the fixture's
//! table.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::Fixture;

impl Fixture {
    /// A workspace record as the control plane writes it: a pro, active workspace idle for 40
    /// days whose expiry passed 10 days ago. Not stored; see [`Fixture::put`].
    pub fn record(
        &self,
        tenant: &str,
        ws: &str,
        access_point: Option<&str>,
    ) -> HashMap<String, AttributeValue> {
        let now = lifecycle_domain::time::now_epoch();
        let mut item = HashMap::from([
            ("workspaceId".to_string(), AttributeValue::S(ws.into())),
            ("tenantId".to_string(), AttributeValue::S(tenant.into())),
            ("userId".to_string(), AttributeValue::S("u-1".into())),
            ("tier".to_string(), AttributeValue::S("pro".into())),
            (
                "subscriptionStatus".to_string(),
                AttributeValue::S("active".into()),
            ),
            (
                "lastActivityAt".to_string(),
                AttributeValue::N((now - 40 * 86_400).to_string()),
            ),
            (
                "expiresAt".to_string(),
                AttributeValue::N((now - 10 * 86_400).to_string()),
            ),
            // An attribute the functions do not know: it must survive every write they make.
            ("sizeBytes".to_string(), AttributeValue::N("1234".into())),
        ]);
        if let Some(ap) = access_point {
            item.insert("accessPointId".into(), AttributeValue::S(ap.into()));
        }
        item
    }

    pub async fn put(&self, item: &HashMap<String, AttributeValue>) {
        self.ddb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item.clone()))
            .send()
            .await
            .expect("put item");
    }

    /// Deletes the stored record of `ws` (as the TTL process does).
    pub async fn delete_record(&self, ws: &str) {
        self.ddb
            .delete_item()
            .table_name(&self.table)
            .key("workspaceId", AttributeValue::S(ws.into()))
            .send()
            .await
            .expect("delete item");
    }

    /// The stored record of `ws` (a consistent read).
    pub async fn get(&self, ws: &str) -> Option<HashMap<String, AttributeValue>> {
        self.ddb
            .get_item()
            .table_name(&self.table)
            .key("workspaceId", AttributeValue::S(ws.into()))
            .consistent_read(true)
            .send()
            .await
            .expect("get item")
            .item
    }
}

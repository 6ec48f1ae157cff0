//! Writing a batch of send outcomes and what follows from them, in one transaction: the
//! recipients' transitions and log rows ([`recipients::record`]), then pausing a campaign
//! on an instance error or `gateway_unreachable`, on its error threshold, and completing
//! the campaigns that have nothing left to send.

use sea_orm::{DatabaseConnection, TransactionTrait};
use std::collections::BTreeSet;
use uuid::Uuid;

use crate::campaigns::repo as campaigns_repo;
use crate::recipients::{self, Outcome, Record};

pub async fn record(db: &DatabaseConnection, records: &[Record]) -> Result<(), sea_orm::DbErr> {
    let Some(first) = records.first() else {
        return Ok(());
    };
    let txn = db.begin().await?;
    recipients::record(&txn, records).await?;
    for r in records {
        if let Some(reason) = &r.pause {
            campaigns_repo::pause_if_active(&txn, r.campaign_id, reason).await?;
        }
    }
    let failed: BTreeSet<Uuid> = records
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed | Outcome::Unknown))
        .map(|r| r.campaign_id)
        .collect();
    for campaign in failed {
        campaigns_repo::pause_on_error_threshold(&txn, campaign).await?;
    }
    let touched: Vec<Uuid> = records
        .iter()
        .map(|r| r.campaign_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    campaigns_repo::complete_finished(&txn, &touched, first.at).await?;
    txn.commit().await
}

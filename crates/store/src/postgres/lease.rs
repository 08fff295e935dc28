//! The sequencer's lease on PostgreSQL: a session-level advisory lock, taken on a connection
//! of its own, held for as long as that connection lives. A node that dies (or whose
//! connection the server drops) releases it with its session, and another node takes it.

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection as _;

use super::SEQUENCER_LOCK;
use crate::contract::SequencerLease;
use crate::records::StoreError;

/// How long a check of the lease's connection may take before the lease counts as lost.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

struct AdvisoryLease {
    connection: tokio::sync::Mutex<PgConnection>,
}

/// Takes the lease if no session holds it.
pub(super) async fn take(
    options: &PgConnectOptions,
) -> Result<Option<Box<dyn SequencerLease>>, StoreError> {
    let mut connection = PgConnection::connect_with(options).await?;
    let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(SEQUENCER_LOCK)
        .fetch_one(&mut connection)
        .await?;
    if !taken {
        let _ = connection.close().await;
        return Ok(None);
    }
    Ok(Some(Box::new(AdvisoryLease {
        connection: tokio::sync::Mutex::new(connection),
    })))
}

#[async_trait::async_trait]
impl SequencerLease for AdvisoryLease {
    async fn held(&self) -> bool {
        let mut connection = self.connection.lock().await;
        // The lock belongs to the session: as long as the session answers, it is ours.
        let answered = tokio::time::timeout(
            CHECK_TIMEOUT,
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                 AND pid = pg_backend_pid() AND granted \
                 AND ((classid::bigint << 32) | objid::bigint) = $1)",
            )
            .bind(SEQUENCER_LOCK)
            .fetch_one(&mut *connection),
        )
        .await;
        matches!(answered, Ok(Ok(true)))
    }
}

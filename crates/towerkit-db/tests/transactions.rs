//! `Db::transaction`: commit on Ok, rollback on Err and on panic, and a connection that is
//! never returned to the pool with a transaction still open.

mod common;

use std::time::Duration;

use common::{Schema, builder, committed_rows};
use towerkit_db::{Db, DbError, Tx};

/// An application error that a database error converts into.
#[derive(Debug)]
enum AppError {
    Db(#[allow(dead_code)] DbError),
    Rule(&'static str),
}

impl From<DbError> for AppError {
    fn from(error: DbError) -> Self {
        Self::Db(error)
    }
}

/// A pool of one connection (so a leaked transaction would be seen by the next query) and
/// a fresh table of notes.
async fn setup() -> (Schema, Db, String) {
    let schema = Schema::create().await;
    let db = Db::connect(builder().max_size(1).build().unwrap())
        .await
        .unwrap();
    let table = schema.table("notes");
    db.execute(&format!("CREATE TABLE {table} (note text NOT NULL)"), &[])
        .await
        .unwrap();
    (schema, db, table)
}

/// Proves the pool's connection is outside any transaction: a plain insert through the
/// pool must be visible to another connection at once.
async fn assert_connection_is_clean(db: &Db, table: &str, expected: &[&str]) {
    db.execute(&format!("INSERT INTO {table} VALUES ('after')"), &[])
        .await
        .unwrap();
    assert_eq!(committed_rows(table).await, expected);
}

#[tokio::test]
async fn commits_when_the_closure_returns_ok() {
    let (_schema, db, table) = setup().await;
    let insert = format!("INSERT INTO {table} VALUES ($1)");
    let inserted = db
        .transaction(|tx| async move {
            let a = tx.execute(&insert, &[&"a"]).await?;
            let b = tx.execute(&insert, &[&"b"]).await?;
            Ok::<_, DbError>(a + b)
        })
        .await
        .unwrap();
    assert_eq!(inserted, 2);
    assert_eq!(committed_rows(&table).await, ["a", "b"]);
    assert_connection_is_clean(&db, &table, &["a", "after", "b"]).await;
}

#[tokio::test]
async fn rolls_back_when_the_closure_returns_err() {
    let (_schema, db, table) = setup().await;
    let insert = format!("INSERT INTO {table} VALUES ($1)");
    let result: Result<(), AppError> = db
        .transaction(|tx| async move {
            tx.execute(&insert, &[&"doomed"]).await?;
            Err(AppError::Rule("business rule violated"))
        })
        .await;
    assert!(
        matches!(result, Err(AppError::Rule("business rule violated"))),
        "{result:?}"
    );
    assert!(committed_rows(&table).await.is_empty());
    assert_connection_is_clean(&db, &table, &["after"]).await;
}

#[tokio::test]
async fn rolls_back_when_a_query_inside_fails() {
    let (_schema, db, table) = setup().await;
    let insert = format!("INSERT INTO {table} VALUES ($1)");
    let result = db
        .transaction(|tx| async move {
            tx.execute(&insert, &[&"doomed"]).await?;
            tx.execute("SELECT * FROM no_such_table_anywhere", &[])
                .await?;
            Ok::<_, DbError>(())
        })
        .await;
    assert!(matches!(result, Err(DbError::Query { .. })), "{result:?}");
    assert!(committed_rows(&table).await.is_empty());
    assert_connection_is_clean(&db, &table, &["after"]).await;
}

#[tokio::test]
async fn rolls_back_on_panic_and_the_panic_continues() {
    let (_schema, db, table) = setup().await;
    let insert = format!("INSERT INTO {table} VALUES ($1)");
    let task_db = db.clone();
    let joined = tokio::spawn(async move {
        task_db
            .transaction(|tx| async move {
                tx.execute(&insert, &[&"doomed"]).await?;
                if tx.execute("SELECT 1", &[]).await? == 1 {
                    panic!("handler bug");
                }
                Ok::<_, DbError>(())
            })
            .await
    })
    .await;
    let panic = joined.unwrap_err();
    assert!(panic.is_panic());
    assert!(committed_rows(&table).await.is_empty());
    assert_connection_is_clean(&db, &table, &["after"]).await;
    assert_eq!(
        db.pool_status().size,
        1,
        "the rolled-back connection is reused"
    );
}

#[tokio::test]
async fn a_cancelled_transaction_never_returns_its_connection_to_the_pool() {
    let (_schema, db, table) = setup().await;
    let insert = format!("INSERT INTO {table} VALUES ($1)");
    let transaction = db.transaction(|tx| async move {
        tx.execute(&insert, &[&"doomed"]).await?;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok::<_, DbError>(())
    });
    // The client went away (or a timeout layer fired) while the transaction was open.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), transaction)
            .await
            .is_err()
    );
    assert!(committed_rows(&table).await.is_empty());
    assert_connection_is_clean(&db, &table, &["after"]).await;
}

#[tokio::test]
async fn a_tx_that_escapes_its_closure_rolls_back() {
    let (_schema, db, table) = setup().await;
    let insert = format!("INSERT INTO {table} VALUES ($1)");
    let result = db
        .transaction(|tx| async move {
            tx.execute(&insert, &[&"doomed"]).await?;
            Ok::<Tx, DbError>(tx)
        })
        .await;
    // Returning the Tx lets it outlive the closure: the transaction is not committed.
    assert!(
        matches!(result, Err(DbError::TransactionEscaped)),
        "{result:?}"
    );
    assert!(committed_rows(&table).await.is_empty());
    assert_connection_is_clean(&db, &table, &["after"]).await;
}

#[tokio::test]
async fn a_tx_used_after_its_transaction_is_refused() {
    let (_schema, db, _table) = setup().await;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let result = db
        .transaction(|tx| async move {
            // Smuggle the handle out through a channel: the transaction rolls back.
            let _ = sender.send(tx);
            Ok::<_, DbError>(())
        })
        .await;
    assert!(
        matches!(result, Err(DbError::TransactionEscaped)),
        "{result:?}"
    );
    let tx = receiver.await.unwrap();
    assert!(matches!(
        tx.query("SELECT 1", &[]).await,
        Err(DbError::TransactionFinished)
    ));
}

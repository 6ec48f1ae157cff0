use crate::helpers::{spawn_app, test_settings};
use sea_orm::{ConnectionTrait, Database};
use sea_orm_migration::MigratorTrait;
use secrecy::{ExposeSecret, SecretString};

#[tokio::test]
async fn migrations_rerun_as_a_no_op_and_roll_back_cleanly() {
    let app = spawn_app().await;
    migration::Migrator::up(&app.db, None).await.unwrap();
    migration::Migrator::down(&app.db, None).await.unwrap();
    assert!(app.db.execute_unprepared("SELECT 1 FROM contacts").await.is_err());
    migration::Migrator::up(&app.db, None).await.unwrap();
    app.db.execute_unprepared("SELECT 1 FROM contacts").await.unwrap();
}

#[tokio::test]
async fn arauto_migrate_creates_a_missing_database_and_is_idempotent() {
    let mut settings = test_settings();
    let name = format!("arauto_test_{}", uuid::Uuid::new_v4().simple());
    let mut url = reqwest::Url::parse(settings.database.url.expose_secret()).unwrap();
    url.set_path(&format!("/{name}"));
    settings.database.url = SecretString::from(url.to_string());
    let first = arauto::cli::migrate(&settings).await;
    let second = arauto::cli::migrate(&settings).await;
    url.set_path("/postgres");
    let admin = Database::connect(url.as_str()).await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .unwrap();
    first.unwrap();
    second.unwrap();
}

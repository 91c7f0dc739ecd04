use std::time::Duration;

use crate::support::{TestApp, detail};

#[tokio::test]
async fn health_answers_ok_while_the_process_runs() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    Ok(())
}

#[tokio::test]
async fn ready_answers_ok_when_the_database_and_the_storage_answer() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;

    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ready");

    let head = app.client.head(app.url("/ready")).send().await?;
    assert_eq!(head.status(), 200);
    assert!(head.bytes().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn ready_is_503_naming_the_storage_while_its_folder_is_gone() -> anyhow::Result<()> {
    let storage = tempfile::tempdir()?;
    let dir = storage.path().join("crates");
    let app = TestApp::builder()
        .set("storage_dir", dir.to_string_lossy())
        .spawn()
        .await;
    std::fs::remove_dir(&dir)?;

    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 503);
    assert_eq!(
        detail(&body),
        "not ready: the crate storage cannot be reached; the cause is in this instance's log"
    );
    let head = app.client.head(app.url("/ready")).send().await?;
    assert_eq!(head.status(), 503);
    assert!(head.bytes().await?.is_empty());
    let (status, _) = app.get_json("/health").await;
    assert_eq!(status, 200, "the process is up all the same");

    std::fs::create_dir(&dir)?;
    let (status, _) = app.get_json("/ready").await;
    assert_eq!(status, 200, "ready again once the folder is back");
    Ok(())
}

#[tokio::test]
async fn ready_is_503_naming_the_database_while_it_does_not_answer() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    // Every connection of the pool (4 in tests) is taken, so no query can run.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Arc::new(std::sync::Mutex::new(released));
    let (taken, all_taken) = std::sync::mpsc::channel();
    let holders: Vec<_> = (0..4)
        .map(|_| {
            let db = app.app.clone();
            let released = released.clone();
            let taken = taken.clone();
            std::thread::spawn(move || {
                db.db.blocking(|_conn| {
                    taken.send(()).ok();
                    released.lock().unwrap().recv().ok();
                    Ok(())
                })
            })
        })
        .collect();
    for _ in 0..4 {
        all_taken.recv_timeout(Duration::from_secs(10))?;
    }

    let (status, body) = app.get_json("/ready").await;
    assert_eq!(status, 503);
    assert_eq!(
        detail(&body),
        "not ready: the database cannot be reached; the cause is in this instance's log"
    );
    let (status, _) = app.get_json("/health").await;
    assert_eq!(status, 200, "the process is up all the same");

    drop(release);
    for holder in holders {
        holder.join().unwrap()?;
    }
    let (status, _) = app.get_json("/ready").await;
    assert_eq!(status, 200, "ready again once the database answers");
    Ok(())
}

#[tokio::test]
async fn unknown_api_routes_answer_in_the_error_shape() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let (status, body) = app.get_json("/api/v1/nothing-here").await;
    assert_eq!(status, 404);
    insta::assert_json_snapshot!(body);
    Ok(())
}

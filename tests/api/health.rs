use crate::support::TestApp;

#[tokio::test]
async fn health_answers_ok_when_the_database_answers() -> anyhow::Result<()> {
    let app = TestApp::spawn().await;
    let (status, body) = app.get_json("/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
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

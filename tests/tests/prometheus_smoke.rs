//! The local Prometheus scrapes a target written into its file_sd folder, and
//! prometheus-http-query reads the scraped value back.

use std::time::Duration;

use impressions_tests::{Stack, unique};
use prometheus_http_query::Client;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

#[tokio::test]
async fn scrapes_a_file_sd_target_and_answers_queries() {
    let stack = Stack::get();
    let run = unique("smoke");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = format!(
        "# HELP impressions_smoke_value A value for the smoke test.\n\
         # TYPE impressions_smoke_value gauge\n\
         impressions_smoke_value{{run=\"{run}\"}} 42\n"
    );
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = sock.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });

    let target = stack.file_sd_dir.join(format!("{run}.json"));
    let sd = serde_json::json!([{ "targets": [addr.to_string()], "labels": { "job": "smoke" } }]);
    std::fs::write(&target, serde_json::to_vec(&sd).unwrap()).unwrap();

    let client = Client::try_from(stack.prometheus_url.as_str()).unwrap();
    let query = format!("impressions_smoke_value{{run=\"{run}\"}}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    let value = loop {
        let res = client
            .query(query.as_str())
            .get()
            .await
            .expect("query Prometheus");
        if let Some(v) = res.data().as_vector().and_then(|v| v.first()) {
            break v.sample().value();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "target not scraped within 45s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    std::fs::remove_file(&target).unwrap();
    assert_eq!(value, 42.0);
}

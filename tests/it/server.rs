//! The reference server (`examples/server`), as a client sees it: every
//! route, bad input refused with a reason, and what survives a SIGKILL
//! (events, deltas, rules, experiments, all through the log). The load and
//! fault drill is `examples/fault_drill` (run by `.ci/run`).

use super::examples::example;
use super::live::snapshots::temp_dir;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    base: String,
    argv: Vec<String>,
}

impl Server {
    fn start(dir: &std::path::Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let root = env!("CARGO_MANIFEST_DIR");
        let argv = vec![
            "--config".to_string(),
            format!("{root}/examples/omnifeed.toml"),
            "--catalog".into(),
            format!("{root}/data"),
            "--data-dir".into(),
            dir.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ];
        let child = spawn(&argv);
        let mut s = Server { child, base: format!("http://127.0.0.1:{port}"), argv };
        s.wait_ready();
        s
    }

    fn wait_ready(&mut self) {
        let t = Instant::now();
        while get(&self.base, "/readyz").0 != 200 {
            assert!(self.child.try_wait().unwrap().is_none(), "the server exited");
            assert!(t.elapsed() < Duration::from_secs(120), "not ready in 120 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.child = spawn(&self.argv);
        self.wait_ready();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(argv: &[String]) -> Child {
    Command::new(example("server"))
        .args(argv)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn reply(mut r: ureq::http::Response<ureq::Body>) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn get(base: &str, path: &str) -> (u16, Value) {
    match agent().get(&format!("{base}{path}")).call() {
        Ok(r) => reply(r),
        Err(_) => (0, Value::Null),
    }
}

fn send(base: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let url = format!("{base}{path}");
    let a = agent();
    let r =
        if method == "PUT" { a.put(&url).send_json(&body) } else { a.post(&url).send_json(&body) };
    reply(r.unwrap())
}

fn products(feed: &Value) -> Vec<u64> {
    feed["items"].as_array().unwrap().iter().map(|i| i["product"].as_u64().unwrap()).collect()
}

/// Waits until the server applied `offset` (the status's offset).
fn applied(base: &str, offset: u64) {
    let t = Instant::now();
    while get(base, "/v1/status").1["offset"].as_u64().unwrap() < offset {
        assert!(t.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(10));
    }
    // Published at most `publish_ms` (100 ms) after it was applied.
    std::thread::sleep(Duration::from_millis(250));
}

/// One request time for the feeds this test compares (the server's clock is
/// the wall clock, and decayed scores move with it): just after the shipped
/// events and the one this test posts.
const AT: i64 = 1_793_402_600;

#[test]
fn the_server_serves_every_route_and_keeps_what_it_acknowledged_across_a_kill() {
    let dir = temp_dir("server");
    let mut s = Server::start(&dir);
    let b = s.base.clone();
    assert_eq!(get(&b, "/healthz").0, 200);
    let (code, feed) = send(&b, "POST", "/v1/feed", json!({ "user": 1, "k": 10, "at": AT }));
    assert_eq!(code, 200, "{feed}");
    assert_eq!(products(&feed).len(), 10);
    let (code, found) =
        send(&b, "POST", "/v1/search", json!({ "user": 2, "k": 5, "query": "organic tea" }));
    assert_eq!((code, products(&found).len()), (200, 5), "{found}");
    let (code, omni) = send(&b, "POST", "/v1/omni", json!({ "user": 2, "k": 5, "explain": true }));
    assert_eq!(code, 200);
    assert!(omni["items"][0]["explanation"]["heads"].is_array(), "{omni}");
    // Bad input: a reason, never a crash.
    let (code, e) = send(&b, "POST", "/v1/feed", json!({ "user": 1, "k": 0 }));
    assert_eq!(code, 400, "{e}");
    assert_eq!(send(&b, "POST", "/v1/search", json!({ "user": 1 })).0, 400);
    assert_eq!(send(&b, "POST", "/v1/feed", json!({ "usr": 1 })).0, 422);
    assert_eq!(send(&b, "POST", "/v1/events", json!([])).0, 400);
    // An event, acknowledged with its offset.
    let click = json!([{ "at": AT, "user": 1, "target": { "product": products(&feed)[0] }, "kind": "click" }]);
    let (code, ack) = send(&b, "POST", "/v1/events", click);
    assert_eq!(code, 200, "{ack}");
    // A delta: the product leaves the feed.
    let gone = products(&feed)[1];
    let (code, ack) = send(&b, "POST", "/v1/deltas", json!([{ "delist": { "product": gone } }]));
    assert_eq!(code, 200, "{ack}");
    applied(&b, ack["offset"].as_u64().unwrap());
    let feed = send(&b, "POST", "/v1/feed", json!({ "user": 1, "k": 10, "at": AT })).1;
    assert!(!products(&feed).contains(&gone));
    // Rules: a pin in force at once; an unknown product refused.
    let pinned = products(&feed)[7];
    let rules = json!({ "pins": [{ "product": pinned, "surface": "feed", "position": 0 }] });
    assert_eq!(send(&b, "PUT", "/v1/rules", rules).0, 200);
    let feed = send(&b, "POST", "/v1/feed", json!({ "user": 1, "k": 10, "at": AT })).1;
    assert_eq!(products(&feed)[0], pinned);
    let unknown = json!({ "pins": [{ "product": 1, "surface": "feed", "position": 0 }] });
    let (code, e) = send(&b, "PUT", "/v1/rules", unknown);
    assert_eq!(code, 400);
    assert!(e["error"].as_str().unwrap().contains("unknown product id 1"), "{e}");
    // Experiments: every user in the one arm; an unknown key refused.
    let arm = json!([{ "name": "e", "variants": [{ "name": "v", "share": 1.0, "config": { "rerank_pool": 200 } }] }]);
    assert_eq!(send(&b, "PUT", "/v1/experiments", arm.clone()).0, 200);
    let bad = json!([{ "name": "e", "variants": [{ "name": "v", "share": 1.0, "config": { "rerank_pol": 1 } }] }]);
    let (code, e) = send(&b, "PUT", "/v1/experiments", bad);
    assert_eq!(code, 400);
    assert!(e["error"].as_str().unwrap().contains("rerank_pol"), "{e}");
    let feed = send(&b, "POST", "/v1/feed", json!({ "user": 1, "k": 10, "at": AT })).1;
    assert_eq!(feed["variant"], "e/v");
    let metrics =
        agent().get(&format!("{b}/metrics")).call().unwrap().body_mut().read_to_string().unwrap();
    assert!(
        metrics.contains("omnifeed_http_requests_total{route=\"feed\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("omnifeed_server_ready 1"), "{metrics}");
    let before = get(&b, "/v1/status").1;
    // SIGKILL: the restart serves the same log, rules and experiments.
    s.kill_and_restart();
    let after = get(&b, "/v1/status").1;
    assert_eq!(after["offset"], before["offset"]);
    assert_eq!(after["ready"], true);
    assert_eq!(get(&b, "/v1/experiments").1, arm_as_served(&arm));
    assert_eq!(get(&b, "/v1/rules").1["pins"][0]["product"], pinned);
    let again = send(&b, "POST", "/v1/feed", json!({ "user": 1, "k": 10, "at": AT })).1;
    assert_eq!(products(&again), products(&feed));
    assert_eq!(again["variant"], "e/v");
}

/// The experiments as `GET` returns them (the salt spelled out).
fn arm_as_served(arm: &Value) -> Value {
    let mut a = arm.clone();
    a[0]["salt"] = Value::Null;
    a
}

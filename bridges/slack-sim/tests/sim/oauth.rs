//! OAuth v2 end to end: authorize page → approve as a chosen person → redirect with code and
//! state → oauth.v2.access → tokens that work.

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn install_flow_end_to_end() {
    let sim = start().await;
    let s = sim.seeded().clone();
    let base = sim.base_url();
    let q = format!(
        "client_id={}&scope=chat:write,channels:history&user_scope=chat:write,channels:read&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback&state=xyz123",
        s.client_id
    );
    // The consent page lists people to approve as.
    let page = http()
        .get(format!("{base}/oauth/v2/authorize?{q}"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains("Switchboard is requesting permission"),
        "{html}"
    );
    assert!(html.contains("user=U0ALICE0001"));
    // Approve as Bob.
    let r = http()
        .get(format!(
            "{base}/oauth/v2/authorize/approve?{q}&user=U0BOB000001"
        ))
        .send()
        .await
        .expect("approve");
    assert_eq!(r.status().as_u16(), 302);
    let location = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    assert!(
        location.starts_with("http://127.0.0.1/callback?code="),
        "{location}"
    );
    let query = location.split_once('?').map(|(_, q)| q).expect("query");
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query).expect("params");
    let get = |k: &str| {
        params
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
            .expect(k)
    };
    assert_eq!(get("state"), "xyz123");
    let code = get("code");
    // Wrong secret, then the right exchange (form-encoded, no token).
    let bad = call(&sim, "oauth.v2.access", "", json!({"client_id": s.client_id, "client_secret": "nope", "code": code, "redirect_uri": "http://127.0.0.1/callback"})).await;
    assert_err(&bad, "bad_client_secret");
    let r = call(&sim, "oauth.v2.access", "", json!({"client_id": s.client_id, "client_secret": s.client_secret, "code": code, "redirect_uri": "http://127.0.0.1/callback"})).await;
    assert_ok(&r);
    assert_eq!(r["token_type"], "bot");
    assert_eq!(r["access_token"], s.bot_token);
    assert_eq!(r["bot_user_id"], BOT);
    assert_eq!(r["app_id"], "A0SIMAPP001");
    assert_eq!(r["team"], json!({"id": "T0SIMTEAM01", "name": "Acme"}));
    assert_eq!(r["authed_user"]["id"], BOB);
    assert_eq!(r["authed_user"]["token_type"], "user");
    assert_eq!(r["authed_user"]["scope"], "channels:read,chat:write");
    let user_token = r["authed_user"]["access_token"]
        .as_str()
        .expect("xoxp")
        .to_string();
    assert!(user_token.starts_with("xoxp-"));
    // The codes are single-use.
    let again = call(
        &sim,
        "oauth.v2.access",
        "",
        json!({"client_id": s.client_id, "client_secret": s.client_secret, "code": code}),
    )
    .await;
    assert_err(&again, "invalid_code");
    // The new token acts as Bob, with the granted scopes only.
    let who = call(&sim, "auth.test", &user_token, json!({})).await;
    assert_eq!(who["user_id"], BOB);
    let posted = call(
        &sim,
        "chat.postMessage",
        &user_token,
        json!({"channel": GENERAL, "text": "linked!"}),
    )
    .await;
    assert_eq!(posted["message"]["user"], BOB);
    let r = call(&sim, "users.list", &user_token, json!({})).await;
    assert_eq!(r["error"], "missing_scope");
    // HTTP Basic client credentials work too; a bad redirect_uri is refused at exchange.
    let r = http()
        .get(format!(
            "{base}/oauth/v2/authorize/approve?{q}&user=U0ALICE0001"
        ))
        .send()
        .await
        .expect("approve");
    let loc = r.headers()["location"].to_str().expect("loc").to_string();
    let code2: Vec<(String, String)> =
        serde_urlencoded::from_str(loc.split_once('?').expect("q").1).expect("p");
    let code2 = code2
        .into_iter()
        .find(|(k, _)| k == "code")
        .expect("code")
        .1;
    let resp = http()
        .post(sim.api_url("oauth.v2.access"))
        .basic_auth(&s.client_id, Some(&s.client_secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("code", code2.as_str()),
                ("redirect_uri", "http://127.0.0.1/other"),
            ])
            .expect("form"),
        )
        .send()
        .await
        .expect("exchange");
    assert_err(
        &resp.json::<Value>().await.expect("json"),
        "bad_redirect_uri",
    );
    // Errors on the authorize page: wrong client id, disallowed redirect.
    let r = http()
        .get(format!(
            "{base}/oauth/v2/authorize?client_id=0.0&scope=chat:write"
        ))
        .send()
        .await
        .expect("page");
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.expect("html").contains("invalid_client_id"));
    let r = http()
        .get(format!(
            "{base}/oauth/v2/authorize?client_id={}&redirect_uri=https%3A%2F%2Fevil.example%2F",
            s.client_id
        ))
        .send()
        .await
        .expect("page");
    assert!(r.text().await.expect("html").contains("bad_redirect_uri"));
    // Denying redirects with error=access_denied.
    let r = http()
        .post(format!("{base}/oauth/v2/authorize/approve"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("client_id", s.client_id.as_str()),
                ("redirect_uri", "http://127.0.0.1/cb"),
                ("state", "s1"),
                ("deny", "1"),
            ])
            .expect("form"),
        )
        .send()
        .await
        .expect("deny");
    assert_eq!(
        r.headers()["location"],
        "http://127.0.0.1/cb?error=access_denied&state=s1"
    );
    sim.shutdown().await;
}

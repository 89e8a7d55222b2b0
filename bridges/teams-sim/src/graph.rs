//! Microsoft Graph v1.0: users, teams, channels, chats and their messages.
//!
//! Overview: <https://learn.microsoft.com/graph/teams-messaging-overview>. Each handler names
//! its endpoint and documentation page. Permissions follow each page's table
//! (<https://learn.microsoft.com/graph/permissions-reference>): sending, editing, deleting
//! and reacting need a delegated token; an application token may read. An application's
//! message POST gets the answer Graph gives outside migration mode (observed,
//! `conformance/teams/graph/errors-throttling/observed-error-responses.json`).
//!
//! Ids in paths may be percent-encoded (`19%3A…%40thread.tacv2`); axum decodes them.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::Sim;
use crate::limits::Class;
use crate::state::{Change, Cursor, Principal, Reaction, Scope, State as Tenant};
use crate::util::{GraphError, iso_ms, json_response, lock, now_ms, opaque, parse_iso, pct};

type R = Result<Response, GraphError>;

/// Path ids, with Graph's error body when they cannot be decoded.
#[derive(Debug)]
struct Ids(HashMap<String, String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Ids {
    type Rejection = GraphError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| Ids(p))
            .map_err(|_| GraphError::bad_request("Invalid identifier in the request path."))
    }
}
type Q = Result<Query<HashMap<String, String>>, QueryRejection>;

/// The documented size limit of a message ("approximately 28 KB per post").
pub const MAX_MESSAGE_BYTES: usize = 28 * 1024;

/// Graph's request body limit (4 MB): a POST with inline images
/// (`hostedContents`, base64) may not be larger. The 28 KB of
/// [`MAX_MESSAGE_BYTES`] count the message without its hosted contents.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Graph routes under `/v1.0`.
pub fn routes() -> axum::Router<Arc<Sim>> {
    const CH: &str = "/v1.0/teams/{team}/channels/{channel}/messages";
    const CT: &str = "/v1.0/chats/{chat}/messages";
    let mut r = axum::Router::new()
        .route("/v1.0/me", get(me))
        .route("/v1.0/me/joinedTeams", get(joined_teams))
        .route("/v1.0/me/chats", get(crate::directory::list_chats))
        .route(
            "/v1.0/chats",
            get(crate::directory::list_chats).post(crate::directory::create_chat),
        )
        .route("/v1.0/users", get(crate::directory::list_users))
        .route("/v1.0/users/{user}", get(user))
        .route("/v1.0/users/{user}/photo/$value", get(photo))
        .route("/v1.0/me/photo/$value", get(photo))
        .route("/v1.0/me/onlineMeetings", post(online_meeting))
        .route(
            "/v1.0/me/onlineMeetings/createOrGet",
            post(online_meeting_create_or_get),
        )
        .route("/v1.0/me/onlineMeetings/{meeting}", get(get_online_meeting))
        .route("/v1.0/teams/{team}", get(team))
        .route("/v1.0/teams/{team}/members", get(team_members))
        .route("/v1.0/teams/{team}/channels", get(channels))
        .route("/v1.0/teams/{team}/channels/{channel}", get(channel))
        .route(
            "/v1.0/teams/{team}/channels/{channel}/members",
            get(channel_members),
        )
        .route("/v1.0/chats/{chat}", get(chat))
        .route("/v1.0/chats/{chat}/members", get(chat_members))
        .route(CH, get(list_messages).post(post_message))
        .route(&format!("{CH}/delta"), get(delta))
        .route(
            &format!("{CH}/{{msg}}"),
            get(get_message).patch(patch_message),
        )
        .route(
            &format!("{CH}/{{msg}}/replies"),
            get(list_messages).post(post_message),
        )
        .route(
            &format!("{CH}/{{msg}}/replies/{{reply}}"),
            get(get_message).patch(patch_message),
        )
        .route(CT, get(list_messages).post(post_message))
        .route(
            &format!("{CT}/{{msg}}"),
            get(get_message).patch(patch_message),
        );
    for base in [
        format!("{CH}/{{msg}}"),
        format!("{CH}/{{msg}}/replies/{{reply}}"),
        format!("{CT}/{{msg}}"),
    ] {
        r = r
            .route(
                &format!("{base}/softDelete"),
                post(|s, h, p, b| action(s, h, p, b, Action::SoftDelete)),
            )
            .route(
                &format!("{base}/undoSoftDelete"),
                post(|s, h, p, b| action(s, h, p, b, Action::UndoSoftDelete)),
            )
            .route(
                &format!("{base}/setReaction"),
                post(|s, h, p, b| action(s, h, p, b, Action::SetReaction)),
            )
            .route(
                &format!("{base}/unsetReaction"),
                post(|s, h, p, b| action(s, h, p, b, Action::UnsetReaction)),
            )
            .route(&format!("{base}/hostedContents"), get(list_hosted))
            .route(&format!("{base}/hostedContents/{{hc}}"), get(get_hosted))
            .route(
                &format!("{base}/hostedContents/{{hc}}/$value"),
                get(hosted_value),
            );
    }
    // Inline images make message POSTs larger than axum's default limit.
    r.layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES + 1))
}

// ---------------------------------------------------------------------------------------
// Helpers

/// Did the caller send `Prefer: include-unknown-enum-members`?
fn include_unknown(h: &HeaderMap) -> bool {
    h.get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.to_ascii_lowercase()
                .contains("include-unknown-enum-members")
        })
}

fn arg<'a>(p: &'a HashMap<String, String>, k: &str) -> Result<&'a str, GraphError> {
    p.get(k)
        .map(String::as_str)
        .ok_or_else(|| GraphError::bad_request(format!("Missing {k}.")))
}

/// Where the path points: (scope, message id, parent id for replies).
fn target(
    p: &HashMap<String, String>,
) -> Result<(Scope, Option<String>, Option<String>), GraphError> {
    let scope = match (p.get("team"), p.get("channel"), p.get("chat")) {
        (Some(t), Some(c), _) => Scope::Channel {
            team: t.clone(),
            channel: c.clone(),
        },
        (_, _, Some(c)) => Scope::Chat { chat: c.clone() },
        _ => {
            return Err(GraphError::bad_request(
                "Resource not found for the segment.",
            ));
        }
    };
    Ok(match (p.get("msg"), p.get("reply")) {
        (Some(m), Some(r)) => (scope, Some(r.clone()), Some(m.clone())),
        (Some(m), None) => (scope, Some(m.clone()), None),
        _ => (scope, None, None),
    })
}

/// Requires one of `delegated` scopes (delegated tokens) or one of `app` roles (app
/// tokens): 403 `Forbidden` "Missing scope permissions on the request…" otherwise (observed).
pub fn need(p: &Principal, delegated: &[&str], app: &[&str]) -> Result<(), GraphError> {
    match p {
        Principal::Delegated { scopes, .. } => {
            if scopes.iter().any(|s| delegated.contains(&s.as_str())) {
                Ok(())
            } else {
                Err(GraphError::new(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    format!(
                        "Missing scope permissions on the request. API requires one of '{}'. Scopes on the request '{}'",
                        delegated.join(", "),
                        scopes.join(", ")
                    ),
                ))
            }
        }
        Principal::App { roles, .. } => {
            if app.is_empty() {
                Err(GraphError::new(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "Missing role permissions on the request. This API does not support application permissions; a delegated token is required.",
                ))
            } else if roles.iter().any(|s| app.contains(&s.as_str())) {
                Ok(())
            } else {
                Err(GraphError::new(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    format!(
                        "Missing role permissions on the request. API requires one of '{}'. Roles on the request '{}'.",
                        app.join(", "),
                        roles.join(", ")
                    ),
                ))
            }
        }
    }
}

/// 404 when the scope is unknown, 403 when a delegated caller is not a member.
fn check_scope(st: &Tenant, p: &Principal, scope: &Scope) -> Result<(), GraphError> {
    if !st.scope_exists(scope) {
        return Err(match scope {
            Scope::Channel { team, channel } if st.teams.contains_key(team) => {
                GraphError::not_found(format!("Channel {channel} not found."))
            }
            Scope::Channel { team, .. } => {
                GraphError::not_found(format!("No team found with Group Id {team}"))
            }
            Scope::Chat { chat } => GraphError::not_found(format!("Chat {chat} not found.")),
        });
    }
    match p.user() {
        Some(u) if !st.can_access(u, scope) => Err(GraphError::forbidden()),
        _ => Ok(()),
    }
}

fn parse_body(b: &Bytes) -> Result<Value, GraphError> {
    if b.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice::<Value>(b)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| GraphError::bad_request("Invalid request body: a JSON object is required."))
}

fn top_of(q: &HashMap<String, String>, default: usize) -> Result<usize, GraphError> {
    match q.get("$top") {
        None => Ok(default),
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=50).contains(&n) => Ok(n),
            _ => Err(GraphError::bad_request(
                "Invalid page size requested. Page size should be between 1 and 50.",
            )),
        },
    }
}

fn query(q: Q) -> Result<HashMap<String, String>, GraphError> {
    q.map(|Query(q)| q)
        .map_err(|_| GraphError::bad_request("Invalid query string."))
}

fn with_context(mut v: Value, ctx: String) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.insert("@odata.context".into(), Value::String(ctx));
    }
    v
}

fn ok(v: Value) -> R {
    Ok(json_response(StatusCode::OK, v))
}

fn collection(ctx: String, items: Vec<Value>) -> R {
    ok(json!({"@odata.context": ctx, "@odata.count": items.len(), "value": items}))
}

fn scope_ctx(base: &str, scope: &Scope) -> String {
    match scope {
        Scope::Channel { team, channel } => format!(
            "{base}/v1.0/$metadata#teams('{team}')/channels('{}')/messages",
            pct(channel)
        ),
        Scope::Chat { chat } => format!("{base}/v1.0/$metadata#chats('{}')/messages", pct(chat)),
    }
}

fn read_scopes(scope: &Scope) -> (&'static [&'static str], &'static [&'static str]) {
    match scope {
        Scope::Channel { .. } => (
            &[
                "ChannelMessage.Read.All",
                "ChannelMessage.ReadWrite",
                "Group.Read.All",
                "Group.ReadWrite.All",
            ],
            &[
                "ChannelMessage.Read.All",
                "Group.Read.All",
                "Group.ReadWrite.All",
            ],
        ),
        Scope::Chat { .. } => (
            &["Chat.Read", "Chat.ReadWrite"],
            &["Chat.Read.All", "Chat.ReadWrite.All"],
        ),
    }
}

fn get_class(scope: &Scope) -> Class {
    match scope {
        Scope::Channel { .. } => Class::GetChannelMessage,
        Scope::Chat { .. } => Class::GetChatMessage,
    }
}

// ---------------------------------------------------------------------------------------
// Users

/// `GET /me` — <https://learn.microsoft.com/graph/api/user-get>
async fn me(State(sim): State<Arc<Sim>>, h: HeaderMap) -> R {
    let p = sim.gate(&h, Class::OtherGet).await?;
    let Some(uid) = p.user() else {
        return Err(GraphError::bad_request(
            "/me request is only valid with delegated authentication flow.",
        ));
    };
    need(
        &p,
        &["User.Read", "User.ReadBasic.All", "User.Read.All"],
        &[],
    )?;
    let st = lock(&sim.state);
    let u = st
        .users
        .get(uid)
        .ok_or_else(|| GraphError::not_found("User not found."))?;
    ok(with_context(
        st.render_user(u),
        format!("{}/v1.0/$metadata#users/$entity", sim.base),
    ))
}

/// `GET /users/{id | userPrincipalName}` — <https://learn.microsoft.com/graph/api/user-get>
async fn user(State(sim): State<Arc<Sim>>, h: HeaderMap, Ids(ids): Ids) -> R {
    let id = arg(&ids, "user")?.to_string();
    let p = sim.gate(&h, Class::OtherGet).await?;
    need(
        &p,
        &["User.ReadBasic.All", "User.Read.All", "User.Read"],
        &["User.Read.All", "User.ReadBasic.All"],
    )?;
    let st = lock(&sim.state);
    let u = st.resolve_user(&id).ok_or_else(|| {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
        )
    })?;
    ok(with_context(
        st.render_user(u),
        format!("{}/v1.0/$metadata#users/$entity", sim.base),
    ))
}

/// `GET /users/{id}/photo/$value`, `GET /me/photo/$value` —
/// <https://learn.microsoft.com/graph/api/profilephoto-get>
async fn photo(State(sim): State<Arc<Sim>>, h: HeaderMap, p: Option<Path<String>>) -> R {
    let pr = sim.gate(&h, Class::OtherGet).await?;
    need(
        &pr,
        &["User.Read", "User.ReadBasic.All", "User.Read.All"],
        &["User.Read.All"],
    )?;
    let st = lock(&sim.state);
    let key = match (&p, pr.user()) {
        (Some(Path(id)), _) => id.clone(),
        (None, Some(u)) => u.to_string(),
        (None, None) => {
            return Err(GraphError::bad_request(
                "/me request is only valid with delegated authentication flow.",
            ));
        }
    };
    let u = st
        .resolve_user(&key)
        .ok_or_else(|| GraphError::not_found("User not found."))?;
    let Some(bytes) = u.photo.clone() else {
        return Err(GraphError::new(
            StatusCode::NOT_FOUND,
            "ImageNotFound",
            "Exception of type 'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' was thrown.",
        ));
    };
    let ct = if bytes.starts_with(&[0x89, b'P', b'N', b'G']) {
        "image/png"
    } else {
        "image/jpeg"
    };
    let mut r = bytes.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    Ok(r)
}

// ---------------------------------------------------------------------------------------
// Teams, channels, chats

const TEAM_READ_D: &[&str] = &[
    "Team.ReadBasic.All",
    "TeamSettings.Read.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
];
const CHANNEL_READ_D: &[&str] = &[
    "Channel.ReadBasic.All",
    "ChannelSettings.Read.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
];
const MEMBER_READ_D: &[&str] = &[
    "ChannelMember.Read.All",
    "TeamMember.Read.All",
    "Group.Read.All",
    "Group.ReadWrite.All",
];

fn team_scope(st: &Tenant, p: &Principal, team: &str) -> Result<(), GraphError> {
    let t = st
        .teams
        .get(team)
        .ok_or_else(|| GraphError::not_found(format!("No team found with Group Id {team}")))?;
    match p.user() {
        Some(u) if !t.members.iter().any(|m| m.user == u) => Err(GraphError::forbidden()),
        _ => Ok(()),
    }
}

/// `GET /teams/{team-id}` — <https://learn.microsoft.com/graph/api/team-get>
async fn team(State(sim): State<Arc<Sim>>, h: HeaderMap, Ids(ids): Ids) -> R {
    let id = arg(&ids, "team")?.to_string();
    let p = sim.gate(&h, Class::OtherGet).await?;
    need(&p, TEAM_READ_D, TEAM_READ_D)?;
    let st = lock(&sim.state);
    team_scope(&st, &p, &id)?;
    let t = st.teams.get(&id).ok_or_else(GraphError::forbidden)?;
    ok(with_context(
        st.render_team(t),
        format!("{}/v1.0/$metadata#teams/$entity", sim.base),
    ))
}

/// `GET /me/joinedTeams` — <https://learn.microsoft.com/graph/api/user-list-joinedteams>
async fn joined_teams(State(sim): State<Arc<Sim>>, h: HeaderMap) -> R {
    let p = sim.gate(&h, Class::OtherGet).await?;
    let Some(u) = p.user() else {
        return Err(GraphError::bad_request(
            "/me request is only valid with delegated authentication flow.",
        ));
    };
    need(&p, TEAM_READ_D, &[])?;
    let st = lock(&sim.state);
    let v = st
        .teams
        .values()
        .filter(|t| t.members.iter().any(|m| m.user == u))
        .map(|t| json!({"id": t.id, "displayName": t.display_name, "description": t.description, "isArchived": false, "tenantId": st.tenant_id}))
        .collect();
    collection(format!("{}/v1.0/$metadata#teams", sim.base), v)
}

/// `GET /teams/{team-id}/channels` — <https://learn.microsoft.com/graph/api/channel-list>
async fn channels(State(sim): State<Arc<Sim>>, h: HeaderMap, Ids(ids): Ids) -> R {
    let id = arg(&ids, "team")?.to_string();
    let p = sim.gate(&h, Class::GetTeamInfo).await?;
    need(&p, CHANNEL_READ_D, CHANNEL_READ_D)?;
    let st = lock(&sim.state);
    team_scope(&st, &p, &id)?;
    let v = st
        .teams
        .get(&id)
        .map(|t| {
            t.channels
                .values()
                .map(|c| st.render_channel(&id, c))
                .collect()
        })
        .unwrap_or_default();
    collection(
        format!("{}/v1.0/$metadata#teams('{id}')/channels", sim.base),
        v,
    )
}

/// `GET /teams/{team-id}/channels/{channel-id}` — <https://learn.microsoft.com/graph/api/channel-get>
async fn channel(State(sim): State<Arc<Sim>>, h: HeaderMap, Ids(p): Ids) -> R {
    let pr = sim.gate(&h, Class::GetTeamInfo).await?;
    need(&pr, CHANNEL_READ_D, CHANNEL_READ_D)?;
    let (scope, _, _) = target(&p)?;
    let st = lock(&sim.state);
    check_scope(&st, &pr, &scope)?;
    let (team, ch) = (arg(&p, "team")?, arg(&p, "channel")?);
    let c = st
        .teams
        .get(team)
        .and_then(|t| t.channels.get(ch))
        .ok_or_else(|| GraphError::not_found("Channel not found."))?;
    ok(with_context(
        st.render_channel(team, c),
        format!(
            "{}/v1.0/$metadata#teams('{team}')/channels/$entity",
            sim.base
        ),
    ))
}

/// `GET /teams/{team-id}/members` — <https://learn.microsoft.com/graph/api/team-list-members>
async fn team_members(State(sim): State<Arc<Sim>>, h: HeaderMap, Ids(ids): Ids) -> R {
    let id = arg(&ids, "team")?.to_string();
    let p = sim.gate(&h, Class::GetTeamInfo).await?;
    need(&p, MEMBER_READ_D, MEMBER_READ_D)?;
    let st = lock(&sim.state);
    team_scope(&st, &p, &id)?;
    let v = st
        .teams
        .get(&id)
        .map(|t| {
            t.members
                .iter()
                .map(|m| st.render_member(&id, &m.user, m.owner))
                .collect()
        })
        .unwrap_or_default();
    collection(
        format!("{}/v1.0/$metadata#teams('{id}')/members", sim.base),
        v,
    )
}

/// `GET /teams/{team-id}/channels/{channel-id}/members` —
/// <https://learn.microsoft.com/graph/api/channel-list-members>
async fn channel_members(State(sim): State<Arc<Sim>>, h: HeaderMap, Ids(p): Ids) -> R {
    let pr = sim.gate(&h, Class::GetTeamInfo).await?;
    need(&pr, MEMBER_READ_D, MEMBER_READ_D)?;
    let (scope, _, _) = target(&p)?;
    let st = lock(&sim.state);
    check_scope(&st, &pr, &scope)?;
    let (team, ch) = (arg(&p, "team")?, arg(&p, "channel")?);
    let v = st
        .teams
        .get(team)
        .map(|t| {
            t.members
                .iter()
                .map(|m| st.render_member(ch, &m.user, m.owner))
                .collect()
        })
        .unwrap_or_default();
    collection(
        format!(
            "{}/v1.0/$metadata#teams('{team}')/channels('{}')/members",
            sim.base,
            pct(ch)
        ),
        v,
    )
}

/// `GET /chats/{chat-id}` — <https://learn.microsoft.com/graph/api/chat-get>
/// `$expand=members` adds the members, as the page's "Get chat and all its members" example.
async fn chat(State(sim): State<Arc<Sim>>, h: HeaderMap, Ids(ids): Ids, q: Q) -> R {
    let q = query(q)?;
    let members = match q.get("$expand").map(|e| e.trim()) {
        None => false,
        Some(e) if e.eq_ignore_ascii_case("members") => true,
        Some(e) => {
            return Err(GraphError::bad_request(format!(
                "Expanding '{e}' is not supported."
            )));
        }
    };
    let id = arg(&ids, "chat")?.to_string();
    let p = sim.gate(&h, Class::OtherGet).await?;
    need(
        &p,
        &["Chat.ReadBasic", "Chat.Read", "Chat.ReadWrite"],
        &["Chat.ReadBasic.All", "Chat.Read.All", "Chat.ReadWrite.All"],
    )?;
    let st = lock(&sim.state);
    check_scope(&st, &p, &Scope::Chat { chat: id.clone() })?;
    let c = st.chats.get(&id).ok_or_else(GraphError::forbidden)?;
    ok(with_context(
        crate::directory::render_chat_expanded(&st, c, members, false),
        format!("{}/v1.0/$metadata#chats/$entity", sim.base),
    ))
}

/// `GET /chats/{chat-id}/members` — <https://learn.microsoft.com/graph/api/chat-list-members>
async fn chat_members(State(sim): State<Arc<Sim>>, h: HeaderMap, Ids(ids): Ids) -> R {
    let id = arg(&ids, "chat")?.to_string();
    let p = sim.gate(&h, Class::OtherGet).await?;
    need(
        &p,
        &[
            "ChatMember.Read",
            "Chat.ReadBasic",
            "Chat.Read",
            "Chat.ReadWrite",
        ],
        &["ChatMember.Read.All", "Chat.ReadBasic.All", "Chat.Read.All"],
    )?;
    let st = lock(&sim.state);
    check_scope(&st, &p, &Scope::Chat { chat: id.clone() })?;
    let v = st
        .chats
        .get(&id)
        .map(|c| {
            c.members
                .iter()
                .map(|m| st.render_member(&id, m, false))
                .collect()
        })
        .unwrap_or_default();
    collection(
        format!("{}/v1.0/$metadata#chats('{}')/members", sim.base, pct(&id)),
        v,
    )
}

// ---------------------------------------------------------------------------------------
// Messages

/// The path of a message list under `/v1.0` (for nextLinks).
fn list_path(scope: &Scope, parent: Option<&str>) -> String {
    match (scope, parent) {
        (Scope::Channel { team, channel }, None) => {
            format!("/teams/{team}/channels/{channel}/messages")
        }
        (Scope::Channel { team, channel }, Some(m)) => {
            format!("/teams/{team}/channels/{channel}/messages/{m}/replies")
        }
        (Scope::Chat { chat }, _) => format!("/chats/{chat}/messages"),
    }
}

/// `GET /teams/{id}/channels/{id}/messages` (<https://learn.microsoft.com/graph/api/channel-list-messages>),
/// `GET …/messages/{id}/replies` (<https://learn.microsoft.com/graph/api/chatmessage-list-replies>),
/// `GET /chats/{id}/messages` (<https://learn.microsoft.com/graph/api/chat-list-messages>).
/// Newest first, `$top` ≤ 50 (default 20), paged with an absolute `@odata.nextLink`.
async fn list_messages(State(sim): State<Arc<Sim>>, h: HeaderMap, Ids(p): Ids, q: Q) -> R {
    let unknown = include_unknown(&h);
    let q = query(q)?;
    let (scope, parent, _) = target(&p)?;
    let pr = sim.gate(&h, get_class(&scope)).await?;
    let (d, a) = read_scopes(&scope);
    need(&pr, d, a)?;
    let path = list_path(&scope, parent.as_deref());
    let mut st = lock(&sim.state);
    check_scope(&st, &pr, &scope)?;
    if let Some(root) = &parent
        && st.find(&scope, root, None).is_none()
    {
        return Err(GraphError::not_found("Message not found."));
    }
    let (offset, top) = match q.get("$skiptoken") {
        Some(tok) => match st.cursors.get(tok) {
            Some(Cursor::List {
                path: cp,
                offset,
                top,
            }) if *cp == path => (*offset, *top),
            _ => return Err(GraphError::bad_request("Invalid skip token.")),
        },
        None => (0, top_of(&q, 20)?),
    };
    // A reply is stored after its root, under a greater id: a root's replies
    // are among the messages after it.
    let after = parent.as_deref().and_then(|r| r.parse::<u64>().ok());
    let candidates: Box<dyn Iterator<Item = &crate::state::Message>> = match after {
        Some(root) => Box::new(
            st.messages
                .range((std::ops::Bound::Excluded(root), std::ops::Bound::Unbounded))
                .map(|(_, m)| m),
        ),
        None => Box::new(st.messages.values()),
    };
    let mut all: Vec<&crate::state::Message> = candidates
        // The cheap tests first: most messages fail them, and the scope's
        // strings need not be compared then.
        .filter(|m| {
            let placed = match (&scope, &parent) {
                (Scope::Chat { .. }, _) => true,
                (_, None) => m.reply_to.is_none(),
                (_, Some(root)) => m.reply_to.as_deref() == Some(root.as_str()),
            };
            placed && m.scope == scope
        })
        .collect();
    all.reverse();
    let total = all.len();
    let items: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(top)
        .map(|m| st.render_message(m, unknown))
        .collect();
    let mut body = json!({
        "@odata.context": scope_ctx(&sim.base, &scope),
        "@odata.count": items.len(),
    });
    if offset + top < total {
        let tok = opaque(40);
        st.cursors.insert(
            tok.clone(),
            Cursor::List {
                path: path.clone(),
                offset: offset + top,
                top,
            },
        );
        if let Some(o) = body.as_object_mut() {
            o.insert(
                "@odata.nextLink".into(),
                json!(format!("{}/v1.0{path}?$skiptoken={tok}", sim.base)),
            );
        }
    }
    if let Some(o) = body.as_object_mut() {
        o.insert("value".into(), Value::Array(items));
    }
    ok(body)
}

/// `GET /teams/{id}/channels/{id}/messages/delta` —
/// <https://learn.microsoft.com/graph/api/chatmessage-delta>. Root messages changed since
/// the last round (new, edited, reacted to, deleted, or with a new reply), oldest change
/// first, paged by `@odata.nextLink` (`$skiptoken`) and ending with an `@odata.deltaLink`
/// (`$deltatoken`) that starts the next round.
async fn delta(State(sim): State<Arc<Sim>>, h: HeaderMap, Ids(p): Ids, q: Q) -> R {
    let unknown = include_unknown(&h);
    let q = query(q)?;
    let (scope, _, _) = target(&p)?;
    let pr = sim.gate(&h, Class::GetChannelMessage).await?;
    let (d, a) = read_scopes(&scope);
    need(&pr, d, a)?;
    let mut st = lock(&sim.state);
    check_scope(&st, &pr, &scope)?;
    let bad_token = || GraphError::bad_request("Invalid delta or skip token.");
    let (since, upto, offset, top) = if let Some(tok) = q.get("$skiptoken") {
        match st.cursors.get(tok) {
            Some(Cursor::Delta {
                scope: s,
                since,
                upto,
                offset,
                top,
            }) if *s == scope => (*since, *upto, *offset, *top),
            _ => return Err(bad_token()),
        }
    } else if let Some(tok) = q.get("$deltatoken") {
        match st.cursors.get(tok) {
            Some(Cursor::DeltaLink { scope: s, since }) if *s == scope => {
                (*since, st.seq, 0, top_of(&q, 20)?)
            }
            _ => return Err(bad_token()),
        }
    } else {
        // `$filter=lastModifiedDateTime gt {time}` is the only filter delta supports.
        if let Some(f) = q.get("$filter") {
            let t = f
                .strip_prefix("lastModifiedDateTime gt ")
                .and_then(parse_iso)
                .ok_or_else(|| {
                    GraphError::bad_request("Only lastModifiedDateTime gt filter is supported.")
                })?;
            let since = st
                .messages
                .values()
                .filter(|m| m.scope == scope && m.modified_ms <= t)
                .map(|m| m.seq)
                .max()
                .unwrap_or(0);
            (since, st.seq, 0, top_of(&q, 20)?)
        } else {
            (0, st.seq, 0, top_of(&q, 20)?)
        }
    };
    let mut changed: Vec<&crate::state::Message> = st
        .messages
        .values()
        // The cheap tests first (most messages are older than the link).
        .filter(|m| m.seq > since && m.seq <= upto && m.reply_to.is_none() && m.scope == scope)
        .collect();
    changed.sort_by_key(|m| m.seq);
    let total = changed.len();
    let items: Vec<Value> = changed
        .iter()
        .skip(offset)
        .take(top)
        .map(|m| {
            let mut v = st.render_message(m, unknown);
            if let Some(o) = v.as_object_mut() {
                o.insert("@odata.type".into(), json!("#microsoft.graph.chatMessage"));
            }
            v
        })
        .collect();
    let path = format!("{}/v1.0{}/delta", sim.base, list_path(&scope, None));
    let tok = opaque(48);
    let link = if offset + top < total {
        st.cursors.insert(
            tok.clone(),
            Cursor::Delta {
                scope: scope.clone(),
                since,
                upto,
                offset: offset + top,
                top,
            },
        );
        ("@odata.nextLink", format!("{path}?$skiptoken={tok}"))
    } else {
        st.cursors.insert(
            tok.clone(),
            Cursor::DeltaLink {
                scope: scope.clone(),
                since: upto,
            },
        );
        ("@odata.deltaLink", format!("{path}?$deltatoken={tok}"))
    };
    ok(json!({
        "@odata.context": format!("{}/v1.0/$metadata#Collection(chatMessage)", sim.base),
        link.0: link.1,
        "value": items,
    }))
}

/// `GET …/messages/{id}` (<https://learn.microsoft.com/graph/api/chatmessage-get>), also
/// for replies and chat messages.
async fn get_message(State(sim): State<Arc<Sim>>, h: HeaderMap, Ids(p): Ids) -> R {
    let unknown = include_unknown(&h);
    let (scope, id, parent) = target(&p)?;
    let id = id.ok_or_else(|| GraphError::bad_request("Missing message id."))?;
    let pr = sim.gate(&h, get_class(&scope)).await?;
    let (d, a) = read_scopes(&scope);
    need(&pr, d, a)?;
    let st = lock(&sim.state);
    check_scope(&st, &pr, &scope)?;
    let m = st
        .find(&scope, &id, parent.as_deref())
        .ok_or_else(|| GraphError::not_found("Message not found."))?;
    let ctx = format!("{}/$entity", scope_ctx(&sim.base, &scope));
    ok(with_context(st.render_message(m, unknown), ctx))
}

/// Graph's answer to an application-only message POST outside migration mode (observed
/// verbatim, `observed-error-responses.json`).
pub fn app_post_refused() -> GraphError {
    GraphError::new(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "Message POST is allowed in application-only context only for import purposes. Refer to https://docs.microsoft.com/microsoftteams/platform/graph-api/import-messages/import-external-messages-to-teams for more details.",
    )
}

/// `POST /teams/{id}/channels/{id}/messages` (<https://learn.microsoft.com/graph/api/channel-post-messages>),
/// `POST …/messages/{id}/replies` (<https://learn.microsoft.com/graph/api/chatmessage-post-replies>),
/// `POST /chats/{id}/messages` (<https://learn.microsoft.com/graph/api/chat-post-messages>).
/// Delegated only; 201 with the chatMessage.
async fn post_message(State(sim): State<Arc<Sim>>, h: HeaderMap, Ids(p): Ids, b: Bytes) -> R {
    let unknown = include_unknown(&h);
    let (scope, parent, _) = target(&p)?;
    let class = match scope {
        Scope::Channel { .. } => Class::PostChannelMessage,
        Scope::Chat { .. } => Class::PostChatMessage,
    };
    let pr = sim.gate(&h, class).await?;
    let Principal::Delegated { user, .. } = &pr else {
        return Err(app_post_refused());
    };
    match scope {
        Scope::Channel { .. } => need(&pr, &["ChannelMessage.Send", "Group.ReadWrite.All"], &[])?,
        Scope::Chat { .. } => need(&pr, &["ChatMessage.Send", "Chat.ReadWrite"], &[])?,
    }
    let body = parse_body(&b)?;
    let hosted = parse_hosted(&body)?;
    // The 28 KB are the message; inline images count against the request
    // limit instead.
    let message_bytes = if hosted.is_empty() {
        b.len()
    } else {
        let mut without = body.clone();
        if let Some(o) = without.as_object_mut() {
            o.remove("hostedContents");
        }
        without.to_string().len()
    };
    if b.len() > MAX_REQUEST_BYTES || message_bytes > MAX_MESSAGE_BYTES {
        return Err(GraphError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "Message size is larger than the allowed limit (approximately 28 KB).",
        ));
    }
    let content = body
        .pointer("/body/content")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::bad_request("Missing body content."))?
        .to_string();
    let content_type = match body.pointer("/body/contentType").and_then(Value::as_str) {
        None => "text".to_string(),
        Some(t) if t.eq_ignore_ascii_case("text") => "text".into(),
        Some(t) if t.eq_ignore_ascii_case("html") => "html".into(),
        Some(t) => {
            return Err(GraphError::bad_request(format!(
                "Invalid value '{t}' for body contentType; expected 'text' or 'html'."
            )));
        }
    };
    let list = |k: &str| -> Result<Value, GraphError> {
        match body.get(k) {
            None | Some(Value::Null) => Ok(json!([])),
            Some(v @ Value::Array(_)) => Ok(v.clone()),
            Some(_) => Err(GraphError::bad_request(format!("'{k}' must be an array."))),
        }
    };
    let (attachments, mentions) = (list("attachments")?, list("mentions")?);
    check_references(&content, &content_type, &attachments, &mentions)?;
    check_hosted_references(&content, &hosted)?;
    let subject = body
        .get("subject")
        .and_then(Value::as_str)
        .map(str::to_string);
    let importance = body
        .get("importance")
        .and_then(Value::as_str)
        .map(str::to_string);
    let (rendered, change) = {
        let mut st = lock(&sim.state);
        check_scope(&st, &pr, &scope)?;
        if let Some(root) = &parent
            && st.find(&scope, root, None).is_none()
        {
            return Err(GraphError::not_found("Message not found."));
        }
        let (id, change) = st.insert_message(
            scope.clone(),
            parent.clone(),
            Some(user.clone()),
            "message",
            &content_type,
            content,
            if parent.is_none() { subject } else { None },
            attachments,
            mentions,
            None,
            importance,
        );
        if !hosted.is_empty() {
            store_hosted(&mut st, &sim.base, &scope, parent.as_deref(), &id, hosted);
        }
        let m = st
            .find(&scope, &id, parent.as_deref())
            .map(|m| st.render_message(m, unknown))
            .unwrap_or(Value::Null);
        (m, change)
    };
    crate::notify::dispatch(&sim, vec![change]);
    let ctx = format!("{}/$entity", scope_ctx(&sim.base, &scope));
    Ok(json_response(
        StatusCode::CREATED,
        with_context(rendered, ctx),
    ))
}

/// Graph's sending rules: every `mentions[].id` appears as `<at id="N">` in an HTML body,
/// and every `<attachment id="X">` in the body names an `attachments[].id`
/// (<https://learn.microsoft.com/graph/api/chatmessage-post>).
fn check_references(
    content: &str,
    content_type: &str,
    attachments: &Value,
    mentions: &Value,
) -> Result<(), GraphError> {
    let empty = Vec::new();
    let mentions = mentions.as_array().unwrap_or(&empty);
    if !mentions.is_empty() && content_type != "html" {
        return Err(GraphError::bad_request(
            "Messages with mentions must have an html body.",
        ));
    }
    for m in mentions {
        let id = match m.get("id") {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            _ => return Err(GraphError::bad_request("Each mention needs an id.")),
        };
        let tag = format!("<at id=\"{id}\">");
        let tag2 = format!("<at id='{id}'>");
        if !content.contains(&tag) && !content.contains(&tag2) {
            return Err(GraphError::bad_request(format!(
                "Mention with id {id} is not referenced in the message body."
            )));
        }
    }
    let ids: Vec<&str> = attachments
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter_map(|a| a.get("id").and_then(Value::as_str))
        .collect();
    let mut rest = content;
    while let Some(i) = rest.find("<attachment id=\"") {
        let after = rest.get(i + 16..).unwrap_or("");
        let Some(end) = after.find('"') else { break };
        let id = after.get(..end).unwrap_or("");
        if !ids.contains(&id) {
            return Err(GraphError::bad_request(format!(
                "Attachment with id {id} referenced in the body is missing from attachments."
            )));
        }
        rest = after.get(end..).unwrap_or("");
    }
    Ok(())
}

fn edit_scopes(scope: &Scope) -> &'static [&'static str] {
    match scope {
        Scope::Channel { .. } => &["ChannelMessage.ReadWrite", "Group.ReadWrite.All"],
        Scope::Chat { .. } => &["Chat.ReadWrite"],
    }
}

/// `PATCH …/messages/{id}` (and replies, chat messages) —
/// <https://learn.microsoft.com/graph/api/chatmessage-update>. Delegated: only the author may
/// change body, subject, mentions or attachments; 204. Sets `lastEditedDateTime`.
async fn patch_message(State(sim): State<Arc<Sim>>, h: HeaderMap, Ids(p): Ids, b: Bytes) -> R {
    let (scope, id, parent) = target(&p)?;
    let id = id.ok_or_else(|| GraphError::bad_request("Missing message id."))?;
    let pr = sim.gate(&h, Class::Other).await?;
    need(&pr, edit_scopes(&scope), &[])?;
    let user = pr.user().unwrap_or_default().to_string();
    let body = parse_body(&b)?;
    if b.len() > MAX_MESSAGE_BYTES {
        return Err(GraphError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "Message size is larger than the allowed limit (approximately 28 KB).",
        ));
    }
    let change = {
        let mut st = lock(&sim.state);
        check_scope(&st, &pr, &scope)?;
        let m = st
            .find_mut(&scope, &id, parent.as_deref())
            .ok_or_else(|| GraphError::not_found("Message not found."))?;
        if m.from.as_deref() != Some(user.as_str()) {
            return Err(GraphError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "Only the sender of a message can update its content.",
            ));
        }
        if m.deleted_ms.is_some() {
            return Err(GraphError::not_found("Message not found."));
        }
        if let Some(c) = body.pointer("/body/content").and_then(Value::as_str) {
            m.content = c.to_string();
        }
        if let Some(t) = body.pointer("/body/contentType").and_then(Value::as_str) {
            m.content_type = if t.eq_ignore_ascii_case("html") {
                "html"
            } else {
                "text"
            }
            .into();
        }
        if let Some(s) = body.get("subject") {
            m.subject = s.as_str().map(str::to_string);
        }
        if let Some(v @ Value::Array(_)) = body.get("mentions") {
            m.mentions = v.clone();
        }
        if let Some(v @ Value::Array(_)) = body.get("attachments") {
            m.attachments = v.clone();
        }
        let n = m.created_ms;
        let reply_to = m.reply_to.clone();
        st.touch(n);
        if let Some(m) = st.messages.get_mut(&n) {
            m.edited_ms = Some(m.modified_ms);
        }
        Change {
            change_type: "updated",
            scope: scope.clone(),
            id: id.clone(),
            reply_to,
        }
    };
    crate::notify::dispatch(&sim, vec![change]);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A POST action on a message.
#[derive(Clone, Copy, Debug)]
enum Action {
    SoftDelete,
    UndoSoftDelete,
    SetReaction,
    UnsetReaction,
}

/// `POST …/softDelete` (<https://learn.microsoft.com/graph/api/chatmessage-softdelete>),
/// `…/undoSoftDelete` (<https://learn.microsoft.com/graph/api/chatmessage-undosoftdelete>),
/// `…/setReaction` (<https://learn.microsoft.com/graph/api/chatmessage-setreaction>),
/// `…/unsetReaction` (<https://learn.microsoft.com/graph/api/chatmessage-unsetreaction>).
/// Delegated only; 204.
async fn action(
    State(sim): State<Arc<Sim>>,
    h: HeaderMap,
    Ids(p): Ids,
    b: Bytes,
    what: Action,
) -> R {
    let (scope, id, parent) = target(&p)?;
    let id = id.ok_or_else(|| GraphError::bad_request("Missing message id."))?;
    let pr = sim.gate(&h, Class::Other).await?;
    let scopes: &[&str] = match (what, &scope) {
        (Action::SetReaction | Action::UnsetReaction, Scope::Channel { .. }) => {
            &["ChannelMessage.Send"]
        }
        (Action::SetReaction | Action::UnsetReaction, Scope::Chat { .. }) => {
            &["ChatMessage.Send", "Chat.ReadWrite"]
        }
        _ => edit_scopes(&scope),
    };
    need(&pr, scopes, &[])?;
    let user = pr.user().unwrap_or_default().to_string();
    let body = parse_body(&b)?;
    let reaction = match what {
        Action::SetReaction | Action::UnsetReaction => Some(
            body.get("reactionType")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| GraphError::bad_request("reactionType is required."))?
                .to_string(),
        ),
        _ => None,
    };
    let change = {
        let mut st = lock(&sim.state);
        check_scope(&st, &pr, &scope)?;
        let is_owner = match &scope {
            Scope::Channel { team, .. } => st
                .teams
                .get(team)
                .is_some_and(|t| t.members.iter().any(|m| m.user == user && m.owner)),
            Scope::Chat { .. } => false,
        };
        let now = now_ms();
        let m = st
            .find_mut(&scope, &id, parent.as_deref())
            .ok_or_else(|| GraphError::not_found("Message not found."))?;
        let n = m.created_ms;
        let changed: Option<&'static str> = match what {
            Action::SoftDelete | Action::UndoSoftDelete => {
                if m.from.as_deref() != Some(user.as_str()) && !is_owner {
                    return Err(GraphError::forbidden());
                }
                match (what, m.deleted_ms) {
                    (Action::SoftDelete, None) => {
                        m.deleted_ms = Some(now);
                        Some("deleted")
                    }
                    (Action::UndoSoftDelete, Some(_)) => {
                        m.deleted_ms = None;
                        Some("updated")
                    }
                    _ => None,
                }
            }
            Action::SetReaction => {
                let r = reaction.unwrap_or_default();
                if m.reactions
                    .iter()
                    .any(|x| x.user == user && x.reaction_type == r)
                {
                    None
                } else {
                    m.reactions.push(Reaction {
                        reaction_type: r,
                        user: user.clone(),
                        created_ms: now,
                    });
                    Some("updated")
                }
            }
            Action::UnsetReaction => {
                let r = reaction.unwrap_or_default();
                let before = m.reactions.len();
                m.reactions
                    .retain(|x| !(x.user == user && x.reaction_type == r));
                (m.reactions.len() != before).then_some("updated")
            }
        };
        let reply_to = m.reply_to.clone();
        match changed {
            Some(ct) => {
                st.touch(n);
                if let (Action::SoftDelete, Some(m)) = (what, st.messages.get_mut(&n)) {
                    m.deleted_ms = Some(m.modified_ms);
                }
                Some(Change {
                    change_type: ct,
                    scope: scope.clone(),
                    id: id.clone(),
                    reply_to,
                })
            }
            None => None,
        }
    };
    if let Some(c) = change {
        crate::notify::dispatch(&sim, vec![c]);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------
// Online meetings

/// `POST /me/onlineMeetings` — <https://learn.microsoft.com/graph/api/application-post-onlinemeetings>.
/// Delegated (`OnlineMeetings.ReadWrite`); creates the meeting chat; 201.
async fn online_meeting(State(sim): State<Arc<Sim>>, h: HeaderMap, b: Bytes) -> R {
    let pr = sim.gate(&h, Class::Other).await?;
    let Some(user) = pr.user().map(str::to_string) else {
        return Err(GraphError::bad_request(
            "/me request is only valid with delegated authentication flow.",
        ));
    };
    need(&pr, &["OnlineMeetings.ReadWrite"], &[])?;
    let body = parse_body(&b)?;
    let meeting = create_meeting(&sim, &user, &body, None);
    Ok(json_response(StatusCode::CREATED, meeting))
}

/// Creates and stores a meeting organised by `user`; returns its resource.
fn create_meeting(sim: &Sim, user: &str, body: &Value, external_id: Option<String>) -> Value {
    let user = user.to_string();
    let now = now_ms();
    let start = body
        .get("startDateTime")
        .and_then(Value::as_str)
        .and_then(parse_iso)
        .unwrap_or(now);
    let end = body
        .get("endDateTime")
        .and_then(Value::as_str)
        .and_then(parse_iso)
        .unwrap_or(start + 3_600_000);
    let subject = body
        .get("subject")
        .and_then(Value::as_str)
        .map(str::to_string);
    let thread = format!("19:meeting_{}@thread.v2", crate::util::opaque(40));
    let mut st = lock(&sim.state);
    st.chats.insert(
        thread.clone(),
        crate::state::Chat {
            id: thread.clone(),
            chat_type: "meeting".into(),
            topic: subject.clone(),
            members: vec![user.clone()],
            created_ms: now,
            updated_ms: now,
        },
    );
    let ctx = json!({"Tid": st.tenant_id, "Oid": user}).to_string();
    let join = format!(
        "https://teams.microsoft.com/l/meetup-join/{}/0?context={}",
        pct(&thread),
        pct(&ctx)
    );
    let organizer = st.identity(&user);
    let upn = st.users.get(&user).map(|u| u.upn.clone());
    let id = format!("MSo{}", crate::util::opaque(60));
    let meeting = json!({
            "@odata.context": format!("{}/v1.0/$metadata#users('{user}')/onlineMeetings/$entity", sim.base),
            "id": id,
            "creationDateTime": iso_ms(now),
            "startDateTime": iso_ms(start),
            "endDateTime": iso_ms(end),
            "joinUrl": join,
            "joinWebUrl": join,
            "meetingCode": format!("{}", fastrand::u64(100_000_000_000..999_999_999_999)),
            "subject": subject,
            "isBroadcast": false,
            "autoAdmittedUsers": "EveryoneInCompany",
            "externalId": external_id,
            "videoTeleconferenceId": null,
            "audioConferencing": null,
            "chatInfo": {"threadId": thread, "messageId": "0", "replyChainMessageId": null},
            "participants": {
                "organizer": {"identity": organizer, "upn": upn, "role": "presenter"},
                "attendees": [],
            },
            "lobbyBypassSettings": {"scope": "organization", "isDialInBypassEnabled": false},
            "joinInformation": {"content": "data:text/html,", "contentType": "html"},
    });
    st.online_meetings.insert(
        id,
        crate::state::OnlineMeeting {
            organizer: user,
            external_id,
            resource: meeting.clone(),
        },
    );
    meeting
}

/// `POST /me/onlineMeetings/createOrGet` —
/// <https://learn.microsoft.com/graph/api/onlinemeeting-createorget>. Delegated
/// (`OnlineMeetings.ReadWrite`). `externalId` is required; the organizer's meeting with that
/// `externalId` is returned (200) if there is one, else one is created (201).
async fn online_meeting_create_or_get(State(sim): State<Arc<Sim>>, h: HeaderMap, b: Bytes) -> R {
    let pr = sim.gate(&h, Class::Other).await?;
    let Some(user) = pr.user().map(str::to_string) else {
        return Err(GraphError::bad_request(
            "/me request is only valid with delegated authentication flow.",
        ));
    };
    need(&pr, &["OnlineMeetings.ReadWrite"], &[])?;
    let body = parse_body(&b)?;
    let Some(external) = body
        .get("externalId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
    else {
        return Err(GraphError::bad_request("externalId is required."));
    };
    let existing = {
        let st = lock(&sim.state);
        st.online_meetings
            .values()
            .find(|m| m.organizer == user && m.external_id.as_deref() == Some(external.as_str()))
            .map(|m| m.resource.clone())
    };
    Ok(match existing {
        Some(meeting) => json_response(StatusCode::OK, meeting),
        None => json_response(
            StatusCode::CREATED,
            create_meeting(&sim, &user, &body, Some(external)),
        ),
    })
}

/// `GET /me/onlineMeetings/{id}` — <https://learn.microsoft.com/graph/api/onlinemeeting-get>.
/// Delegated (`OnlineMeetings.Read`, `OnlineMeetings.ReadWrite`); only the organizer's own
/// meetings; 404 otherwise.
async fn get_online_meeting(State(sim): State<Arc<Sim>>, h: HeaderMap, Ids(ids): Ids) -> R {
    let id = arg(&ids, "meeting")?.to_string();
    let pr = sim.gate(&h, Class::OtherGet).await?;
    let Some(user) = pr.user().map(str::to_string) else {
        return Err(GraphError::bad_request(
            "/me request is only valid with delegated authentication flow.",
        ));
    };
    need(
        &pr,
        &["OnlineMeetings.Read", "OnlineMeetings.ReadWrite"],
        &[],
    )?;
    let st = lock(&sim.state);
    match st.online_meetings.get(&id) {
        Some(m) if m.organizer == user => ok(m.resource.clone()),
        _ => Err(GraphError::not_found("The online meeting was not found.")),
    }
}

// ---------------------------------------------------------------------------------------
// Hosted contents (inline images)

/// A `hostedContents[]` entry of a message POST, decoded.
#[derive(Debug)]
struct NewHosted {
    temporary_id: String,
    content_type: String,
    bytes: Vec<u8>,
}

/// Reads `hostedContents`: each entry needs `@microsoft.graph.temporaryId`,
/// `contentBytes` (base64) and `contentType`; temporary ids are unique
/// (<https://learn.microsoft.com/graph/api/chatmessage-post>, "Send inline images along with the
/// message").
fn parse_hosted(body: &Value) -> Result<Vec<NewHosted>, GraphError> {
    use base64::Engine as _;
    let entries = match body.get("hostedContents") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(GraphError::bad_request(
                "'hostedContents' must be an array.",
            ));
        }
    };
    let mut out: Vec<NewHosted> = Vec::new();
    for e in entries {
        let field = |k: &str| e.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let temporary_id = field("@microsoft.graph.temporaryId").ok_or_else(|| {
            GraphError::bad_request("Each hostedContent needs a @microsoft.graph.temporaryId.")
        })?;
        let content_type = field("contentType")
            .ok_or_else(|| GraphError::bad_request("Each hostedContent needs a contentType."))?;
        let bytes = field("contentBytes")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .filter(|b| !b.is_empty())
            .ok_or_else(|| {
                GraphError::bad_request("Each hostedContent needs base64 contentBytes.")
            })?;
        if out.iter().any(|h| h.temporary_id == temporary_id) {
            return Err(GraphError::bad_request(format!(
                "Duplicate hostedContent temporaryId {temporary_id}."
            )));
        }
        out.push(NewHosted {
            temporary_id: temporary_id.to_string(),
            content_type: content_type.to_string(),
            bytes,
        });
    }
    Ok(out)
}

/// The temporary ids an HTML body refers to as `../hostedContents/{id}/$value`.
fn hosted_refs(content: &str) -> Vec<&str> {
    const PREFIX: &str = "../hostedContents/";
    let mut out = Vec::new();
    let mut rest = content;
    while let Some(i) = rest.find(PREFIX) {
        let after = rest.get(i + PREFIX.len()..).unwrap_or("");
        let end = after.find('/').unwrap_or(after.len());
        out.push(after.get(..end).unwrap_or(""));
        rest = after.get(end..).unwrap_or("");
    }
    out
}

/// Every `../hostedContents/{id}/$value` in the body names a posted entry, and every entry is
/// used.
fn check_hosted_references(content: &str, hosted: &[NewHosted]) -> Result<(), GraphError> {
    let refs = hosted_refs(content);
    for r in &refs {
        if !hosted.iter().any(|h| h.temporary_id == *r) {
            return Err(GraphError::bad_request(format!(
                "Hosted content with temporaryId {r} referenced in the body is missing from hostedContents."
            )));
        }
    }
    for h in hosted {
        if !refs.contains(&h.temporary_id.as_str()) {
            return Err(GraphError::bad_request(format!(
                "Hosted content with temporaryId {} is not referenced in the message body.",
                h.temporary_id
            )));
        }
    }
    Ok(())
}

/// Stores a new message's hosted contents under Graph ids and points its body at them
/// (`{graph}/…/messages/{id}/hostedContents/{hosted id}/$value`, as Graph returns them).
fn store_hosted(
    st: &mut Tenant,
    base: &str,
    scope: &Scope,
    parent: Option<&str>,
    id: &str,
    hosted: Vec<NewHosted>,
) {
    use base64::Engine as _;
    let Ok(n) = id.parse::<u64>() else { return };
    let message_url = format!("{base}/v1.0{}/{id}", list_path(scope, parent));
    let mut stored = Vec::new();
    let mut renames = Vec::new();
    for h in hosted {
        let graph_id = base64::engine::general_purpose::STANDARD
            .encode(format!("id=x_0-sim-{},type=1,url=", crate::util::hex(32)));
        renames.push((
            format!("../hostedContents/{}/$value", h.temporary_id),
            format!("{message_url}/hostedContents/{graph_id}/$value"),
        ));
        stored.push(crate::state::HostedContent {
            id: graph_id,
            content_type: h.content_type,
            bytes: h.bytes,
        });
    }
    st.hosted_contents.insert(n, stored);
    if let Some(m) = st.find_mut(scope, id, parent) {
        for (from, to) in renames {
            m.content = m.content.replace(&from, &to);
        }
    }
}

/// The hosted contents of the message a path names (404 for an unknown message).
fn hosted_of(
    sim: &Sim,
    p: &HashMap<String, String>,
    pr: &Principal,
) -> Result<(String, Vec<crate::state::HostedContent>), GraphError> {
    let (scope, id, parent) = target(p)?;
    let id = id.ok_or_else(|| GraphError::bad_request("Missing message id."))?;
    let (d, a) = read_scopes(&scope);
    need(pr, d, a)?;
    let st = lock(&sim.state);
    check_scope(&st, pr, &scope)?;
    let m = st
        .find(&scope, &id, parent.as_deref())
        .ok_or_else(|| GraphError::not_found("Message not found."))?;
    let n = m.created_ms;
    let ctx = format!(
        "{}/v1.0/$metadata#{}('{}')/hostedContents",
        sim.base,
        list_path(&scope, parent.as_deref()).trim_start_matches('/'),
        id
    );
    Ok((ctx, st.hosted_contents.get(&n).cloned().unwrap_or_default()))
}

/// `GET …/messages/{id}/hostedContents` —
/// <https://learn.microsoft.com/graph/api/chatmessage-list-hostedcontents>. Ids only
/// (`contentBytes` and `contentType` are null, as in Graph's examples).
async fn list_hosted(State(sim): State<Arc<Sim>>, h: HeaderMap, Ids(p): Ids) -> R {
    let (scope, _, _) = target(&p)?;
    let pr = sim.gate(&h, get_class(&scope)).await?;
    let (ctx, hosted) = hosted_of(&sim, &p, &pr)?;
    let items = hosted
        .iter()
        .map(|c| json!({"id": c.id, "contentBytes": null, "contentType": null}))
        .collect();
    collection(ctx, items)
}

/// `GET …/messages/{id}/hostedContents/{id}` —
/// <https://learn.microsoft.com/graph/api/chatmessagehostedcontent-get>; 404 for an unknown id.
async fn get_hosted(State(sim): State<Arc<Sim>>, h: HeaderMap, Ids(p): Ids) -> R {
    let (scope, _, _) = target(&p)?;
    let hc = arg(&p, "hc")?.to_string();
    let pr = sim.gate(&h, get_class(&scope)).await?;
    let (ctx, hosted) = hosted_of(&sim, &p, &pr)?;
    let c = hosted
        .iter()
        .find(|c| c.id == hc)
        .ok_or_else(|| GraphError::not_found("Hosted content not found."))?;
    ok(json!({
        "@odata.context": format!("{ctx}/$entity"),
        "id": c.id, "contentBytes": null, "contentType": null,
    }))
}

/// `GET …/messages/{id}/hostedContents/{id}/$value` — the bytes, with their content type;
/// 404 for an unknown id.
async fn hosted_value(State(sim): State<Arc<Sim>>, h: HeaderMap, Ids(p): Ids) -> R {
    let (scope, _, _) = target(&p)?;
    let hc = arg(&p, "hc")?.to_string();
    let pr = sim.gate(&h, get_class(&scope)).await?;
    let (_, hosted) = hosted_of(&sim, &p, &pr)?;
    let c = hosted
        .into_iter()
        .find(|c| c.id == hc)
        .ok_or_else(|| GraphError::not_found("Hosted content not found."))?;
    let ct = HeaderValue::from_str(&c.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let mut r = c.bytes.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, ct);
    Ok(r)
}

//! The directory and chat creation: `GET /users` with `$filter`, `$top` and paging,
//! `POST /chats`, and `GET /me/chats` with the query options a bridge uses to find its
//! recently active one-on-one chats.
//!
//! * List users: <https://learn.microsoft.com/graph/api/user-list> — `$filter` with
//!   `startswith` on `displayName`, `givenName`, `surname`, `mail` and `userPrincipalName`
//!   (case-insensitive, combined with `or`), `$top` 1–999 (default 100), an absolute
//!   `@odata.nextLink` while more match. Other filters are refused with 400
//!   `Request_UnsupportedQuery`, as Graph refuses what it cannot evaluate without
//!   `ConsistencyLevel: eventual`.
//! * Create chat: <https://learn.microsoft.com/graph/api/chat-post> (examples in
//!   `conformance/teams/graph/examples-2021/chat-post.examples.json`) — `chatType` `oneOnOne`
//!   or `group`, `members` as `aadUserConversationMember`s with `user@odata.bind` and
//!   `roles`; `201 Created` with the chat. "If a one-on-one chat already exists, this
//!   operation returns the existing chat and doesn't create a new one." A delegated caller
//!   must be one of the members. A malformed body is 400 `BadRequest` in Graph's error shape.
//! * List chats: <https://learn.microsoft.com/graph/api/chat-list> — `$expand` of `members`
//!   and `lastMessagePreview`, `$filter=chatType eq '…'`, `$orderby` only
//!   `lastMessagePreview/createdDateTime desc`, `$top` ≤ 50, paged.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use crate::Sim;
use crate::graph::need;
use crate::limits::Class;
use crate::state::{Chat, Cursor, Principal, State as Tenant, User};
use crate::util::{GraphError, iso_ms, json_response, lock, opaque};

type R = Result<Response, GraphError>;
type Q = Result<Query<HashMap<String, String>>, QueryRejection>;

fn query(q: Q) -> Result<HashMap<String, String>, GraphError> {
    q.map(|Query(q)| q)
        .map_err(|_| GraphError::bad_request("Invalid query string."))
}

/// The most users one page of `GET /users` returns.
pub const USERS_TOP_MAX: usize = 999;
/// The page size of `GET /users` without `$top`.
pub const USERS_TOP_DEFAULT: usize = 100;
/// The most chats one page of `GET /me/chats` returns.
pub const CHATS_TOP_MAX: usize = 50;

fn unsupported(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", message)
}

/// The query options of a list request: those of the first page, or those kept behind
/// `$skiptoken`, plus the offset to continue from.
fn options_and_offset(
    st: &Tenant,
    q: &HashMap<String, String>,
    path: &str,
    caller: &str,
) -> Result<(HashMap<String, String>, usize), GraphError> {
    match q.get("$skiptoken") {
        None => Ok((q.clone(), 0)),
        Some(tok) => match st.cursors.get(tok) {
            Some(Cursor::Query {
                path: p,
                caller: c,
                options,
                offset,
            }) if p == path && c == caller => Ok((options.iter().cloned().collect(), *offset)),
            _ => Err(GraphError::bad_request("Invalid skip token.")),
        },
    }
}

/// Which list a page belongs to, and the options it was asked with.
struct Listing<'a> {
    /// The list's path under `/v1.0`.
    path: &'a str,
    /// The delegated caller (empty for the app).
    caller: &'a str,
    /// The first page's options.
    options: &'a HashMap<String, String>,
}

/// The body of one page: `value`, and an absolute `@odata.nextLink` when more remain.
fn page(
    sim: &Sim,
    st: &mut Tenant,
    context: String,
    listing: &Listing<'_>,
    all: Vec<Value>,
    offset: usize,
    top: usize,
) -> Value {
    let Listing {
        path,
        caller,
        options,
    } = *listing;
    let total = all.len();
    let items: Vec<Value> = all.into_iter().skip(offset).take(top).collect();
    let mut body = json!({"@odata.context": context});
    if offset + top < total {
        let tok = opaque(40);
        let mut kept: Vec<(String, String)> = options
            .iter()
            .filter(|(k, _)| k.as_str() != "$skiptoken")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        kept.sort();
        st.cursors.insert(
            tok.clone(),
            Cursor::Query {
                path: path.to_owned(),
                caller: caller.to_owned(),
                options: kept,
                offset: offset + top,
            },
        );
        let top_part = options
            .get("$top")
            .map(|t| format!("$top={t}&"))
            .unwrap_or_default();
        if let Some(o) = body.as_object_mut() {
            o.insert(
                "@odata.nextLink".into(),
                json!(format!(
                    "{}/v1.0{path}?{top_part}$skiptoken={tok}",
                    sim.base
                )),
            );
        }
    }
    if let Some(o) = body.as_object_mut() {
        o.insert("value".into(), Value::Array(items));
    }
    body
}

// ---------------------------------------------------------------------------------------
// Users

/// One `startswith(property,'value')` term of a `$filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartsWith {
    /// `displayName`, `givenName`, `surname`, `mail` or `userPrincipalName`.
    pub property: String,
    /// The prefix, unescaped (`''` → `'`).
    pub prefix: String,
}

const FILTERABLE: &[&str] = &[
    "displayName",
    "givenName",
    "surname",
    "mail",
    "userPrincipalName",
];

/// Parses `startswith(p,'v') or startswith(q,'w') …`. `None` for anything else.
pub fn parse_user_filter(filter: &str) -> Option<Vec<StartsWith>> {
    let mut terms = Vec::new();
    let mut rest = filter.trim();
    loop {
        let lower = rest.to_ascii_lowercase();
        if !lower.starts_with("startswith(") {
            return None;
        }
        rest = rest.get("startswith(".len()..)?;
        let comma = rest.find(',')?;
        let property = rest.get(..comma)?.trim();
        let property = FILTERABLE
            .iter()
            .find(|p| p.eq_ignore_ascii_case(property))?;
        rest = rest.get(comma + 1..)?.trim_start();
        rest = rest.strip_prefix('\'')?;
        // The string literal ends at a quote that is not doubled.
        let mut prefix = String::new();
        let mut chars = rest.char_indices().peekable();
        let end = loop {
            let (i, c) = chars.next()?;
            if c == '\'' {
                if chars.peek().is_some_and(|(_, n)| *n == '\'') {
                    chars.next();
                    prefix.push('\'');
                    continue;
                }
                break i;
            }
            prefix.push(c);
        };
        rest = rest.get(end + 1..)?.trim_start();
        rest = rest.strip_prefix(')')?.trim_start();
        terms.push(StartsWith {
            property: (*property).to_owned(),
            prefix,
        });
        if rest.is_empty() {
            return Some(terms);
        }
        let lower = rest.to_ascii_lowercase();
        if !lower.starts_with("or ") {
            return None;
        }
        rest = rest.get(3..)?.trim_start();
    }
}

fn user_property<'a>(u: &'a User, property: &str) -> Option<&'a str> {
    match property {
        "displayName" => Some(u.display_name.as_str()),
        "givenName" => u.display_name.split_whitespace().next(),
        "surname" => u.display_name.split_whitespace().nth(1),
        "mail" => Some(u.mail.as_str()),
        "userPrincipalName" => Some(u.upn.as_str()),
        _ => None,
    }
}

fn starts_with_ci(value: &str, prefix: &str) -> bool {
    value.to_lowercase().starts_with(&prefix.to_lowercase())
}

/// `GET /users` — <https://learn.microsoft.com/graph/api/user-list>.
pub async fn list_users(State(sim): State<Arc<Sim>>, h: HeaderMap, q: Q) -> R {
    let q = query(q)?;
    let p = sim.gate(&h, Class::OtherGet).await?;
    need(
        &p,
        &["User.ReadBasic.All", "User.Read.All"],
        &["User.Read.All", "User.ReadBasic.All"],
    )?;
    let caller = p.user().unwrap_or_default().to_owned();
    let mut st = lock(&sim.state);
    let (options, offset) = options_and_offset(&st, &q, "/users", &caller)?;
    let top = match options.get("$top") {
        None => USERS_TOP_DEFAULT,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=USERS_TOP_MAX).contains(&n) => n,
            _ => {
                return Err(GraphError::new(
                    StatusCode::BAD_REQUEST,
                    "Request_BadRequest",
                    format!(
                        "Invalid page size specified: '{t}'. Must be between 1 and 999 inclusive."
                    ),
                ));
            }
        },
    };
    let terms = match options.get("$filter") {
        None => None,
        Some(f) => Some(parse_user_filter(f).ok_or_else(|| {
            unsupported(format!(
                "Unsupported or invalid query filter clause specified: '{f}'."
            ))
        })?),
    };
    let all: Vec<Value> = st
        .users
        .values()
        .filter(|u| {
            terms.as_ref().is_none_or(|terms| {
                terms.iter().any(|t| {
                    user_property(u, &t.property).is_some_and(|v| starts_with_ci(v, &t.prefix))
                })
            })
        })
        .map(|u| st.render_user(u))
        .collect();
    let body = page(
        &sim,
        &mut st,
        format!("{}/v1.0/$metadata#users", sim.base),
        &Listing {
            path: "/users",
            caller: &caller,
            options: &options,
        },
        all,
        offset,
        top,
    );
    Ok(json_response(StatusCode::OK, body))
}

// ---------------------------------------------------------------------------------------
// Chats

/// The user id an `aadUserConversationMember`'s `user@odata.bind` names:
/// `https://graph.microsoft.com/v1.0/users('{id}')` or `…/users/{id}`.
pub fn bound_user(bind: &str) -> Option<String> {
    let (_, rest) = bind.rsplit_once("/users")?;
    let id = if let Some(quoted) = rest.strip_prefix("('") {
        quoted.strip_suffix("')")?
    } else {
        rest.strip_prefix('/')?
    };
    (!id.is_empty() && !id.contains('/')).then(|| id.to_owned())
}

/// A chat as `GET /chats/{id}` renders it, with `members` when asked to expand them.
pub fn render_chat_expanded(st: &Tenant, c: &Chat, members: bool, preview: bool) -> Value {
    let mut v = st.render_chat(c);
    if let Some(o) = v.as_object_mut() {
        if members {
            o.insert(
                "members".into(),
                Value::Array(
                    c.members
                        .iter()
                        .map(|m| st.render_member(&c.id, m, c.chat_type == "oneOnOne"))
                        .collect(),
                ),
            );
        }
        if preview {
            let last = st.last_message_in(&c.id).map(|m| {
                json!({
                    "id": m.id,
                    "createdDateTime": iso_ms(m.created_ms),
                    "isDeleted": m.deleted_ms.is_some(),
                    "messageType": m.message_type,
                    "eventDetail": m.event_detail,
                    "body": {
                        "contentType": m.content_type,
                        "content": if m.deleted_ms.is_some() { "" } else { m.content.as_str() },
                    },
                    "from": m.from.as_ref().map(|u| st.identity(u)),
                })
            });
            o.insert("lastMessagePreview".into(), last.unwrap_or(Value::Null));
        }
    }
    v
}

/// `POST /chats` — <https://learn.microsoft.com/graph/api/chat-post>.
pub async fn create_chat(State(sim): State<Arc<Sim>>, h: HeaderMap, b: Bytes) -> R {
    let p = sim.gate(&h, Class::Other).await?;
    need(
        &p,
        &["Chat.Create", "Chat.ReadWrite"],
        &["Chat.Create", "Chat.ReadWrite.All"],
    )?;
    let body: Value = serde_json::from_slice(&b)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            GraphError::bad_request("Invalid request body: a JSON object is required.")
        })?;
    let chat_type = match body.get("chatType").and_then(Value::as_str) {
        Some(t) if t.eq_ignore_ascii_case("oneOnOne") => "oneOnOne",
        Some(t) if t.eq_ignore_ascii_case("group") => "group",
        Some(t) => {
            return Err(GraphError::bad_request(format!(
                "Invalid value '{t}' for chatType; expected 'oneOnOne' or 'group'."
            )));
        }
        None => return Err(GraphError::bad_request("chatType is a required property.")),
    };
    let Some(members) = body.get("members").and_then(Value::as_array) else {
        return Err(GraphError::bad_request("members is a required property."));
    };
    let mut ids = Vec::new();
    for m in members {
        let kind = m.get("@odata.type").and_then(Value::as_str).unwrap_or("");
        if !kind
            .trim_start_matches('#')
            .eq_ignore_ascii_case("microsoft.graph.aadUserConversationMember")
        {
            return Err(GraphError::bad_request(
                "Each member must be a #microsoft.graph.aadUserConversationMember.",
            ));
        }
        if !m.get("roles").is_some_and(Value::is_array) {
            return Err(GraphError::bad_request(
                "Each member must have roles (an array).",
            ));
        }
        let Some(id) = m
            .get("user@odata.bind")
            .and_then(Value::as_str)
            .and_then(bound_user)
        else {
            return Err(GraphError::bad_request(
                "Each member needs user@odata.bind naming a user.",
            ));
        };
        ids.push(id);
    }
    let topic = body.get("topic").and_then(Value::as_str).map(str::to_owned);
    let (value, status) = {
        let mut st = lock(&sim.state);
        let mut resolved: Vec<String> = Vec::new();
        for id in &ids {
            let u = st
                .resolve_user(id)
                .ok_or_else(|| GraphError::not_found(format!("User {id} was not found.")))?;
            if !resolved.contains(&u.id) {
                resolved.push(u.id.clone());
            }
        }
        match chat_type {
            "oneOnOne" if resolved.len() != 2 || ids.len() != 2 => {
                return Err(GraphError::bad_request(
                    "A oneOnOne chat must have exactly two distinct members.",
                ));
            }
            "group" if resolved.len() < 2 => {
                return Err(GraphError::bad_request(
                    "A group chat must have at least two members.",
                ));
            }
            _ => {}
        }
        if let Principal::Delegated { user, .. } = &p
            && !resolved.contains(user)
        {
            return Err(GraphError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "The signed-in user must be one of the chat's members.",
            ));
        }
        let existing = (chat_type == "oneOnOne")
            .then(|| {
                st.one_on_one(&resolved[0], &resolved[1])
                    .map(|c| c.id.clone())
            })
            .flatten();
        let id = match existing {
            Some(id) => id,
            None => {
                let seed = crate::seed::ChatSeed {
                    id: None,
                    name: None,
                    chat_type: Some(chat_type.to_owned()),
                    topic: topic.clone().filter(|_| chat_type == "group"),
                    members: resolved.clone(),
                };
                st.add_chat(&seed)
                    .map_err(|e| GraphError::bad_request(e.to_string()))?
            }
        };
        let c = st
            .chats
            .get(&id)
            .ok_or_else(|| GraphError::not_found("Chat not found."))?;
        let mut v = st.render_chat(c);
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "@odata.context".into(),
                json!(format!("{}/v1.0/$metadata#chats/$entity", sim.base)),
            );
        }
        (v, StatusCode::CREATED)
    };
    Ok(json_response(status, value))
}

/// `GET /me/chats`, `GET /chats` — <https://learn.microsoft.com/graph/api/chat-list>
/// (delegated only).
pub async fn list_chats(State(sim): State<Arc<Sim>>, h: HeaderMap, q: Q) -> R {
    let q = query(q)?;
    let p = sim.gate(&h, Class::OtherGet).await?;
    need(&p, &["Chat.ReadBasic", "Chat.Read", "Chat.ReadWrite"], &[])?;
    let caller = p.user().unwrap_or_default().to_owned();
    let mut st = lock(&sim.state);
    let (options, offset) = options_and_offset(&st, &q, "/me/chats", &caller)?;
    let top = match options.get("$top") {
        None => CHATS_TOP_MAX,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=CHATS_TOP_MAX).contains(&n) => n,
            _ => {
                return Err(GraphError::bad_request(
                    "Invalid page size requested. Page size should be between 1 and 50.",
                ));
            }
        },
    };
    let (mut members, mut preview) = (false, false);
    if let Some(expand) = options.get("$expand") {
        for e in expand.split(',').map(str::trim) {
            match e {
                e if e.eq_ignore_ascii_case("members") => members = true,
                e if e.eq_ignore_ascii_case("lastMessagePreview") => preview = true,
                other => {
                    return Err(GraphError::bad_request(format!(
                        "Expanding '{other}' is not supported."
                    )));
                }
            }
        }
    }
    let chat_type = match options.get("$filter") {
        None => None,
        Some(f) => {
            let parts: Vec<&str> = f.split_whitespace().collect();
            match parts.as_slice() {
                [p, op, v]
                    if p.eq_ignore_ascii_case("chatType") && op.eq_ignore_ascii_case("eq") =>
                {
                    Some(v.trim_matches('\'').to_owned())
                }
                _ => {
                    return Err(GraphError::bad_request(format!(
                        "Unsupported filter '{f}'."
                    )));
                }
            }
        }
    };
    let by_preview = match options.get("$orderby") {
        None => false,
        Some(o)
            if o.trim()
                .eq_ignore_ascii_case("lastMessagePreview/createdDateTime desc") =>
        {
            true
        }
        Some(o) => {
            return Err(GraphError::bad_request(format!(
                "Ordering by '{o}' is not supported; only lastMessagePreview/createdDateTime desc is."
            )));
        }
    };
    let mut chats: Vec<&Chat> = st
        .chats
        .values()
        .filter(|c| c.members.contains(&caller))
        .filter(|c| {
            chat_type
                .as_deref()
                .is_none_or(|t| c.chat_type.eq_ignore_ascii_case(t))
        })
        .collect();
    if by_preview {
        let last = |c: &Chat| st.last_message_in(&c.id).map_or(0, |m| m.created_ms);
        chats.sort_by_key(|c| std::cmp::Reverse(last(c)));
    }
    let all: Vec<Value> = chats
        .into_iter()
        .map(|c| render_chat_expanded(&st, c, members, preview))
        .collect();
    let body = page(
        &sim,
        &mut st,
        format!("{}/v1.0/$metadata#chats", sim.base),
        &Listing {
            path: "/me/chats",
            caller: &caller,
            options: &options,
        },
        all,
        offset,
        top,
    );
    Ok(json_response(StatusCode::OK, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_startswith_terms_joined_by_or() {
        assert_eq!(
            parse_user_filter(
                "startswith(displayName,'ann') or startswith(userPrincipalName,'o''b')"
            ),
            Some(vec![
                StartsWith {
                    property: "displayName".into(),
                    prefix: "ann".into()
                },
                StartsWith {
                    property: "userPrincipalName".into(),
                    prefix: "o'b".into()
                },
            ])
        );
        assert_eq!(
            parse_user_filter("StartsWith(DISPLAYNAME, 'a)b')").map(|t| t[0].prefix.clone()),
            Some("a)b".into())
        );
        assert_eq!(parse_user_filter("displayName eq 'x'"), None);
        assert_eq!(parse_user_filter("startswith(jobTitle,'x')"), None);
        assert_eq!(parse_user_filter("startswith(displayName,'x'"), None);
        assert_eq!(
            parse_user_filter("startswith(displayName,'x') and startswith(mail,'y')"),
            None
        );
        assert_eq!(
            parse_user_filter("startswith(displayName,'unterminated)"),
            None
        );
    }

    #[test]
    fn binds_name_users() {
        assert_eq!(
            bound_user("https://graph.microsoft.com/v1.0/users('8b081ef6-4792')").as_deref(),
            Some("8b081ef6-4792")
        );
        assert_eq!(
            bound_user("https://graph.microsoft.com/v1.0/users/abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            bound_user("https://graph.microsoft.com/v1.0/users('')"),
            None
        );
        assert_eq!(
            bound_user("https://graph.microsoft.com/v1.0/groups('x')"),
            None
        );
    }
}

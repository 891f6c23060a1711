//! The OpenAPI 3.1 document of the REST surface, served at
//! `/api/v1/openapi.json`. It describes exactly what `routes` does; a test
//! runs schemathesis against it.

use serde_json::{Value, json};

fn error_responses(codes: &[&str]) -> Value {
    let mut responses = serde_json::Map::new();
    for code in codes {
        responses.insert((*code).to_owned(), json!({"$ref": format!("#/components/responses/Error{code}")}));
    }
    Value::Object(responses)
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

fn session_page_params() -> Vec<Value> {
    let mut params = vec![session_param()];
    params.extend(page_params());
    params
}

fn page_params() -> Vec<Value> {
    vec![
        json!({"name": "limit", "in": "query", "required": false, "description": "Page size: default 50, values above 500 are clamped to 500; zero or negative is 400.", "schema": {"type": "integer", "minimum": 1}}),
        json!({"name": "cursor", "in": "query", "required": false, "description": "nextCursor of the previous page of the same query. Opaque; a cursor the server did not issue, or an empty one, is 400. Omit it for the first page.", "schema": {"type": "string", "minLength": 1}}),
    ]
}

fn participant_params() -> Vec<Value> {
    let mut params = vec![
        session_param(),
        json!({"name": "groupJid", "in": "path", "required": true, "description": "The group's jid, e.g. 120363025246125486@g.us.",
               "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,123}@g\\.us$"}}),
    ];
    params.extend(page_params());
    params
}

fn session_param() -> Value {
    json!({"name": "session", "in": "path", "required": true,
           "description": "The opaque session id (1-128 of A-Z a-z 0-9 . _ : -). Percent-encode a ':' inside the id.",
           "schema": {"type": "string", "pattern": ID_PATTERN}})
}

/// How the stored-data listings treat a cursor that outlived its backfill.
const STALE_CURSOR: &str = "A walk never mixes two backfills: a cursor issued before a newer backfill was published is answered 409 with reason CURSOR_STALE; start the walk again without a cursor.";

/// What the server accepts as a session, organization or gateway id.
const ID_PATTERN: &str = "^[A-Za-z0-9._:-]{1,128}$";
/// An id filter; empty means no filter.
const FILTER_PATTERN: &str = "^[A-Za-z0-9._:-]{0,128}$";

fn nullable(t: &str) -> Value {
    json!({"type": [t, "null"]})
}

fn schemas() -> Value {
    json!({
        "Session": {
            "type": "object",
            "required": ["id","organizationId","createdByUserId","gatewayId","label","phoneNumber","waJid","waLid","status","autoRead","presenceTyping","isAdminSession","ratePerMin","ratePerHour","createdAt","updatedAt","lastConnectedAt"],
            "additionalProperties": false,
            "properties": {
                "id": {"type": "string"}, "organizationId": {"type": "string"},
                "createdByUserId": nullable("string"), "gatewayId": nullable("string"), "label": nullable("string"),
                "phoneNumber": nullable("string"), "waJid": nullable("string"), "waLid": nullable("string"),
                "status": {"enum": ["stopped","starting","scan_qr_code","working","failed"]},
                "autoRead": {"type": "boolean"}, "presenceTyping": {"type": "boolean"}, "isAdminSession": {"type": "boolean"},
                "ratePerMin": nullable("integer"), "ratePerHour": nullable("integer"),
                "createdAt": {"type": "integer", "description": "ms since the Unix epoch"},
                "updatedAt": {"type": "integer"}, "lastConnectedAt": nullable("integer")
            }
        },
        "BackfillJob": {
            "type": "object",
            "required": ["id","organizationId","sessionId","status","startedAt","finishedAt","contacts","groups","groupMembers","error"],
            "additionalProperties": false,
            "properties": {
                "id": {"type": "string", "description": "a ULID"}, "organizationId": {"type": "string"}, "sessionId": {"type": "string"},
                "status": {"enum": ["queued","running","succeeded","failed"]},
                "startedAt": {"type": "integer"}, "finishedAt": nullable("integer"),
                "contacts": {"type": "integer", "minimum": 0}, "groups": {"type": "integer", "minimum": 0},
                "groupMembers": {"type": "integer", "minimum": 0}, "error": nullable("string")
            }
        },
        "Contact": {
            "type": "object", "required": ["jid","lid","phoneNumber","pushName","fullName","firstName","businessName"], "additionalProperties": false,
            "properties": {"jid": {"type": "string"}, "lid": nullable("string"), "phoneNumber": nullable("string"),
                "pushName": nullable("string"), "fullName": nullable("string"), "firstName": nullable("string"), "businessName": nullable("string")}
        },
        "Participant": {
            "type": "object", "required": ["jid","lid","phoneNumber","isAdmin","isSuperAdmin","displayName"], "additionalProperties": false,
            "properties": {"jid": {"type": "string"}, "lid": nullable("string"), "phoneNumber": nullable("string"),
                "isAdmin": {"type": "boolean"}, "isSuperAdmin": {"type": "boolean"}, "displayName": nullable("string")}
        },
        "Group": {
            "type": "object", "required": ["jid","name","topic","ownerJid","createdAt","isAnnounce","isLocked","addressingMode","participantCount"], "additionalProperties": false,
            "description": "A stored group. Its members are paged at /api/v1/admin/sessions/{session}/groups/{groupJid}/participants.",
            "properties": {"jid": {"type": "string"}, "name": nullable("string"), "topic": nullable("string"), "ownerJid": nullable("string"),
                "createdAt": nullable("integer"), "isAnnounce": {"type": "boolean"}, "isLocked": {"type": "boolean"},
                "addressingMode": nullable("string"), "participantCount": {"type": "integer", "minimum": 0}}
        },
        "SessionPage": {"type": "object", "required": ["data","nextCursor"], "additionalProperties": false,
            "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}}, "nextCursor": nullable("string")}},
        "ContactPage": {"type": "object", "required": ["data","nextCursor"], "additionalProperties": false,
            "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Contact"}}, "nextCursor": nullable("string")}},
        "GroupPage": {"type": "object", "required": ["data","nextCursor"], "additionalProperties": false,
            "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Group"}}, "nextCursor": nullable("string")}},
        "ParticipantPage": {"type": "object", "required": ["data","nextCursor"], "additionalProperties": false,
            "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Participant"}}, "nextCursor": nullable("string")}},
        "SessionEvent": session_event_schema(),
        "SessionEventPage": {"type": "object", "required": ["data","nextCursor"], "additionalProperties": false,
            "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/SessionEvent"}}, "nextCursor": nullable("string")}},
        "Gateway": {
            "type": "object",
            "required": ["id","hostUrl","feed","sessions","lastSnapshotAt","lastEventAt","lastError","follower","statusCounts","heldRemovals"],
            "additionalProperties": false,
            "properties": {
                "id": {"type": "string"}, "hostUrl": {"type": "string", "description": "the session host, without credentials"},
                "feed": {"enum": ["connecting","syncing","live","unreachable","unsupported"]},
                "sessions": {"type": "integer", "minimum": 0, "description": "sessions stored with this gateway"},
                "lastSnapshotAt": nullable("integer"), "lastEventAt": nullable("integer"),
                "lastError": nullable("string"), "follower": nullable("string"),
                "statusCounts": {"type": "object", "additionalProperties": false,
                    "required": ["stopped","starting","scan_qr_code","working","failed"],
                    "properties": {"stopped": {"type": "integer"}, "starting": {"type": "integer"}, "scan_qr_code": {"type": "integer"}, "working": {"type": "integer"}, "failed": {"type": "integer"}}},
                "heldRemovals": {"type": "integer", "minimum": 0, "description": "sessions a held snapshot would remove (0: none held)"}
            }
        },
        "GatewayList": {"type": "object", "required": ["data"], "additionalProperties": false,
            "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Gateway"}}}},
        "Caller": {
            "type": "object", "required": ["subject","validUntil"], "additionalProperties": false,
            "properties": {"subject": {"type": "string", "description": "sub of the login token"},
                "validUntil": {"type": ["integer", "null"], "description": "when the token stops being accepted (ms since the Unix epoch)"}}
        },
        "Error": {
            "type": "object", "required": ["error"], "additionalProperties": false,
            "properties": {"error": {"type": "object", "required": ["code","message","details"], "additionalProperties": false,
                "properties": {
                    "code": {"enum": ["invalid_argument","unauthorized","forbidden","not_found","method_not_allowed","conflict","payload_too_large","rate_limited","internal","not_implemented","unavailable","deadline_exceeded"]},
                    "message": {"type": "string"},
                    "details": {"type": "object", "description": "Machine-readable context, e.g. reason, sessionId, jobId, field."}
                }}}
        }
    })
}

fn session_event_schema() -> Value {
    let status = json!({"enum": ["stopped","starting","scan_qr_code","working","failed", null]});
    json!({
        "type": "object",
        "required": ["cursor","sessionId","organizationId","gatewayId","kind","fromStatus","toStatus","fromGatewayId","changedAt","recordedAt","source"],
        "additionalProperties": false,
        "properties": {
            "cursor": {"type": "string", "description": "where a watch resumes after this event (after=)"},
            "sessionId": {"type": "string"}, "organizationId": {"type": "string"}, "gatewayId": nullable("string"),
            "kind": {"enum": ["appeared","status_changed","moved","removed"]},
            "fromStatus": status, "toStatus": status, "fromGatewayId": nullable("string"),
            "changedAt": {"type": "integer", "description": "the record's updatedAt (the removal's time for removed)"},
            "recordedAt": {"type": "integer", "description": "when the change was stored"},
            "source": {"enum": ["feed","import"]}
        }
    })
}

fn event_paths() -> Value {
    let filters = [
        json!({"name": "organizationId", "in": "query", "required": false, "description": "Only this organization's events; empty means no filter.", "schema": {"type": "string", "pattern": FILTER_PATTERN}}),
        json!({"name": "gatewayId", "in": "query", "required": false, "description": "Only events on this gateway; empty means no filter.", "schema": {"type": "string", "pattern": FILTER_PATTERN}}),
        json!({"name": "status", "in": "query", "required": false, "description": "Only events entering this status.", "schema": {"enum": ["stopped","starting","scan_qr_code","working","failed"]}}),
        json!({"name": "since", "in": "query", "required": false, "description": "Only events recorded at or after this time (ms since 1970).", "schema": {"type": "integer", "minimum": 0, "maximum": 253_402_300_799_999_i64}}),
    ];
    json!({
        "/api/v1/admin/sessions/{session}/events": {"get": {
            "operationId": "listSessionEventsOfSession", "summary": "One session's history, newest first (super_admin)",
            "description": "404 for a session never stored; a removed session's events stay readable.",
            "parameters": session_page_params(),
            "responses": with(json!({"200": ok("One page of events, newest first.", "SessionEventPage")}), errors(&["404"]))
        }},
        "/api/v1/admin/session-events": {"get": {
            "operationId": "listSessionEvents", "summary": "The fleet's session events, newest first (super_admin)",
            "parameters": page_params().into_iter().chain(filters).collect::<Vec<_>>(),
            "responses": with(json!({"200": ok("One page of events, newest first.", "SessionEventPage")}), errors(&[]))
        }},
        "/api/v1/admin/session-events:watch": {"get": {
            "operationId": "watchSessionEvents", "summary": "Every session event as it commits (super_admin)",
            "description": "Newline-delimited JSON, one SessionEvent per line, in commit order: the events after `after`, then each new one. Without `after`, from now on. Resuming with the cursor of the last event seen gives every later event exactly once, on any replica. 410 (reason CURSOR_GONE) when events after the cursor were pruned: list again. The stream ends with an error line when the token expires.",
            "parameters": [json!({"name": "after", "in": "query", "required": false, "description": "The cursor of the last event seen.", "schema": {"type": "string", "minLength": 1}})],
            "responses": with(json!({"200": {
                "description": "Newline-delimited JSON: one SessionEvent per line.",
                "content": {"application/x-ndjson": {"schema": {"type": "string"}}}
            }}), errors(&["410"]))
        }}
    })
}

fn error_component(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok(description: &str, schema: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
}

fn listing_headers() -> Value {
    json!({
        "ETag": {"description": "Weak etag of the sessions' revision this page was read at; send it back in If-None-Match.", "schema": {"type": "string"}},
        "Cache-Control": {"description": "private, no-cache: revalidate before reuse.", "schema": {"type": "string"}}
    })
}

const COMMON_ERRORS: [&str; 8] = ["400", "401", "403", "405", "429", "500", "503", "504"];

fn errors(extra: &[&str]) -> Value {
    let mut all: Vec<&str> = COMMON_ERRORS.to_vec();
    all.extend_from_slice(extra);
    error_responses(&all)
}

pub fn document() -> Value {
    let mut document = base_document();
    if let (Some(paths), Value::Object(events)) = (document["paths"].as_object_mut(), event_paths()) {
        paths.extend(events);
    }
    document
}

fn base_document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "wa-gateway admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Platform super_admin operations across every organization: list sessions, backfill a session's contacts and groups, follow the job. Every operation requires a login JWT carrying platform_role=super_admin; api-keys and org roles get 403. Authentication comes first: a request without a valid credential is 401 (or 429 after too many failed credentials from one address) whatever else is wrong with it; 400 and 413 are for authorized callers only."
        },
        "security": [{"bearerAuth": []}],
        "paths": {
            "/api/v1/admin/whoami": {"get": {
                "operationId": "whoAmI", "summary": "The super_admin calling (super_admin)",
                "responses": with(json!({"200": ok("The caller.", "Caller")}), errors(&[]))
            }},
            "/api/v1/admin/sessions": {"get": {
                "operationId": "listSessions", "summary": "List sessions across all organizations (super_admin)",
                "parameters": page_params().into_iter().chain([
                    json!({"name": "organizationId", "in": "query", "required": false, "description": "Only this organization's sessions; empty means no filter.", "schema": {"type": "string", "pattern": FILTER_PATTERN}}),
                    json!({"name": "status", "in": "query", "required": false, "schema": {"enum": ["stopped","starting","scan_qr_code","working","failed"]}}),
                    json!({"name": "gatewayId", "in": "query", "required": false, "description": "Only sessions on this gateway; empty means no filter.", "schema": {"type": "string", "pattern": FILTER_PATTERN}}),
                    json!({"name": "If-None-Match", "in": "header", "required": false, "description": "ETags of pages of this same query the caller holds (or *): while no session changed since, the answer is 304 with no body. A value that is not a list of etags is ignored.", "schema": {"type": "string"}})
                ]).collect::<Vec<_>>(),
                "responses": with(json!({
                    "200": with(ok("One page of sessions, in a stable order.", "SessionPage"), json!({"headers": listing_headers()})),
                    "304": {"description": "The page named by If-None-Match is still current (no session changed since it was read).", "headers": listing_headers()}
                }), errors(&[]))
            }},
            "/api/v1/admin/gateways": {"get": {
                "operationId": "listGateways", "summary": "Every configured gateway: its session feed and its sessions by status (super_admin)",
                "responses": with(json!({"200": ok("One entry per configured gateway.", "GatewayList")}), errors(&[]))
            }},
            "/api/v1/admin/gateways/{gateway}:acceptSnapshot": {"post": {
                "operationId": "acceptGatewaySnapshot", "summary": "Apply a gateway's held snapshot: remove the sessions its host no longer holds (super_admin)",
                "parameters": [{"name": "gateway", "in": "path", "required": true, "description": "The gateway id (percent-encode a literal colon).", "schema": {"type": "string"}}],
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}}},
                "responses": with(json!({"200": ok("The gateway; its follower removes the held sessions.", "Gateway")}), errors(&["404", "409", "413"]))
            }},
            "/api/v1/admin/sessions/{session}": {"get": {
                "operationId": "getSession", "summary": "Get one session, whatever its organization (super_admin)",
                "parameters": [session_param()],
                "responses": with(json!({"200": ok("The session.", "Session")}), errors(&["404"]))
            }},
            "/api/v1/admin/sessions/{session}:backfill": {"post": {
                "operationId": "startBackfill", "summary": "Start a session data backfill (super_admin)",
                "parameters": [session_param()],
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}}},
                "responses": with(json!({"202": {
                    "description": "The created job; the work continues in the background.",
                    "headers": {"Location": {"schema": {"type": "string"}, "description": "Where to poll the job."}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BackfillJob"}}}
                }}), errors(&["404", "409", "413", "501"]))
            }},
            "/api/v1/admin/sessions/{session}/backfill": {"get": {
                "operationId": "getBackfill", "summary": "Get the current or latest session backfill job (super_admin)",
                "parameters": [session_param()],
                "responses": with(json!({"200": ok("The queued/running job, else the latest finished one.", "BackfillJob")}), errors(&["404"]))
            }},
            "/api/v1/admin/sessions/{session}/backfill:cancel": {"post": {
                "operationId": "cancelBackfill", "summary": "Cancel the session's queued or running backfill (super_admin)",
                "description": "The job ends failed with an error saying it was cancelled; stored data stays as it was. Answers once the job has stopped (at most 15 s, else 504 with reason CANCEL_PENDING). 409 with reason BACKFILL_NOT_RUNNING when nothing is queued or running.",
                "parameters": [session_param()],
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "maxProperties": 0}}}},
                "responses": with(json!({"200": ok("The job, stopped.", "BackfillJob")}), errors(&["404", "409", "413"]))
            }},
            "/api/v1/admin/sessions/{session}/backfill:watch": {"get": {
                "operationId": "watchBackfill", "summary": "Follow a backfill job until it finishes (super_admin)",
                "parameters": [session_param(),
                    json!({"name": "jobId", "in": "query", "required": false, "description": "Follow this job; 404 (reason BACKFILL_JOB_NOT_CURRENT) when it is no longer the session's current job. Empty or absent follows the current job.", "schema": {"type": "string", "pattern": FILTER_PATTERN}})],
                "responses": with(json!({"200": {
                    "description": "Newline-delimited JSON: the job's current state, then each change, ending after the terminal state.",
                    "content": {"application/x-ndjson": {"schema": {"type": "string"}}}
                }}), errors(&["404"]))
            }},
            "/api/v1/admin/sessions/{session}/contacts": {"get": {
                "operationId": "listSessionContacts", "summary": "Contacts stored by the session's last successful backfill (super_admin)",
                "description": STALE_CURSOR,
                "parameters": session_page_params(),
                "responses": with(json!({"200": ok("One page of contacts, by jid.", "ContactPage")}), errors(&["404", "409"]))
            }},
            "/api/v1/admin/sessions/{session}/groups": {"get": {
                "operationId": "listSessionGroups", "summary": "Groups stored by the session's last successful backfill, with member counts (super_admin)",
                "description": STALE_CURSOR,
                "parameters": session_page_params(),
                "responses": with(json!({"200": ok("One page of groups, by jid.", "GroupPage")}), errors(&["404", "409"]))
            }},
            "/api/v1/admin/sessions/{session}/groups/{groupJid}/participants": {"get": {
                "operationId": "listSessionGroupParticipants", "summary": "Members of one stored group (super_admin)",
                "description": STALE_CURSOR,
                "parameters": participant_params(),
                "responses": with(json!({"200": ok("One page of members, by jid.", "ParticipantPage")}), errors(&["404", "409"]))
            }}
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": schemas(),
            "responses": {
                "Error400": error_component("invalid_argument: a bad parameter, cursor, limit or body."),
                "Error401": with(error_component("unauthorized: missing, malformed, expired, badly signed or unknown credential."),
                    json!({"headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}})),
                "Error403": error_component("forbidden: not a platform super_admin (api-keys and org roles included)."),
                "Error404": error_component("not_found: no such session, job or path."),
                "Error405": error_component("method_not_allowed."),
                "Error409": error_component("conflict: a backfill is already queued or running (BACKFILL_RUNNING), none is running to cancel (BACKFILL_NOT_RUNNING), or a cursor outlived its backfill (CURSOR_STALE)."),
                "Error410": error_component("gone: events after the cursor were pruned (CURSOR_GONE); list the events again."),
                "Error413": error_component("payload_too_large."),
                "Error429": with(error_component("rate_limited: too many failed credentials from this address; retry after Retry-After seconds."),
                    json!({"headers": {"Retry-After": {"schema": {"type": "integer"}}}})),
                "Error500": error_component("internal."),
                "Error501": error_component("not_implemented: no session host is configured for the session's gateway."),
                "Error503": error_component("unavailable."),
                "Error504": error_component("deadline_exceeded.")
            }
        }
    })
}

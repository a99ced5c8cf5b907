//! `oprl lsp`: a language server over stdio. It publishes the compiler's diagnostics (the same
//! as `oprl check`, codes included) when a recipe is opened or changed, and answers hover,
//! completion and go-to-definition from the schema table.
//!
//! The protocol loop lives here; what to answer is in [`features`] (pure functions of a
//! document's text), the cursor's surroundings in [`context`], and the one conversion between
//! byte offsets and LSP's UTF-16 positions in [`position`].

// Open documents are keyed by `lsp_types::Uri`, which clippy flags as a mutable key: the type
// caches parsed parts in cells, but its hash and equality read only the immutable URI text.
#![allow(clippy::mutable_key_type)]

pub mod context;
pub mod features;
pub mod position;

use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, Notification as _,
    PublishDiagnostics,
};
use lsp_types::request::{Completion, GotoDefinition, HoverRequest, Request as _};
use lsp_types::{
    CompletionOptions, CompletionResponse, GotoDefinitionResponse, HoverProviderCapability, OneOf,
    PublishDiagnosticsParams, ServerCapabilities, TextDocumentSyncCapability, TextDocumentSyncKind,
    Uri,
};
use std::collections::HashMap;
use std::path::PathBuf;

/// Why the server stopped other than by `shutdown` and `exit`.
#[derive(Debug, thiserror::Error)]
pub enum LspError {
    #[error("language server protocol error: {0}")]
    Protocol(#[from] lsp_server::ProtocolError),
    #[error("the client went away: {0}")]
    Disconnected(String),
    #[error("stdio failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What the server can do, as sent in its `initialize` reply.
pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![" ".into(), "=".into(), "(".into(), ":".into()]),
            ..CompletionOptions::default()
        }),
        definition_provider: Some(OneOf::Left(true)),
        ..ServerCapabilities::default()
    }
}

/// Runs the server on stdin/stdout until the client sends `shutdown` and `exit`.
pub fn serve_stdio() -> Result<(), LspError> {
    let (connection, io_threads) = Connection::stdio();
    serve(&connection)?;
    drop(connection);
    io_threads.join()?;
    Ok(())
}

/// Runs the server on any connection (stdio, or in-memory channels in tests).
pub fn serve(connection: &Connection) -> Result<(), LspError> {
    let capabilities =
        serde_json::to_value(capabilities()).map_err(|e| LspError::Disconnected(e.to_string()))?;
    connection.initialize(capabilities)?;
    let mut documents: HashMap<Uri, String> = HashMap::new();
    for message in &connection.receiver {
        match message {
            Message::Request(request) => {
                if connection.handle_shutdown(&request)? {
                    return Ok(());
                }
                let response = respond(&documents, request);
                send(connection, Message::Response(response))?;
            }
            Message::Notification(notification) => {
                if let Some(uri) = update(&mut documents, notification) {
                    let diagnostics = match (documents.get(&uri), features::uri_to_path(&uri)) {
                        (Some(text), Some(path)) => features::diagnostics(&path, text),
                        _ => Vec::new(),
                    };
                    let params = PublishDiagnosticsParams::new(uri, diagnostics, None);
                    send(
                        connection,
                        Message::Notification(Notification::new(
                            PublishDiagnostics::METHOD.to_string(),
                            params,
                        )),
                    )?;
                }
            }
            Message::Response(_) => {}
        }
    }
    Ok(())
}

fn send(connection: &Connection, message: Message) -> Result<(), LspError> {
    connection
        .sender
        .send(message)
        .map_err(|e| LspError::Disconnected(e.to_string()))
}

/// Applies a document notification; returns the document whose diagnostics must be published.
fn update(documents: &mut HashMap<Uri, String>, notification: Notification) -> Option<Uri> {
    match notification.method.as_str() {
        DidOpenTextDocument::METHOD => {
            let params: lsp_types::DidOpenTextDocumentParams =
                serde_json::from_value(notification.params).ok()?;
            let uri = params.text_document.uri;
            documents.insert(uri.clone(), params.text_document.text);
            Some(uri)
        }
        DidChangeTextDocument::METHOD => {
            let params: lsp_types::DidChangeTextDocumentParams =
                serde_json::from_value(notification.params).ok()?;
            let uri = params.text_document.uri;
            // Full sync: the last change holds the whole text.
            let text = params.content_changes.into_iter().last()?.text;
            documents.insert(uri.clone(), text);
            Some(uri)
        }
        DidCloseTextDocument::METHOD => {
            let params: lsp_types::DidCloseTextDocumentParams =
                serde_json::from_value(notification.params).ok()?;
            let uri = params.text_document.uri;
            // Publishing for a closed document clears its diagnostics.
            documents.remove(&uri);
            Some(uri)
        }
        _ => None,
    }
}

/// The answer to one request.
fn respond(documents: &HashMap<Uri, String>, request: Request) -> Response {
    let id = request.id.clone();
    let result = match request.method.as_str() {
        HoverRequest::METHOD => position_params(documents, request.params)
            .map(|(_, text, pos)| serde_json::to_value(features::hover(text, pos))),
        Completion::METHOD => position_params(documents, request.params).map(|(_, text, pos)| {
            serde_json::to_value(CompletionResponse::Array(features::completion(text, pos)))
        }),
        GotoDefinition::METHOD => {
            position_params(documents, request.params).map(|(path, text, pos)| {
                serde_json::to_value(GotoDefinitionResponse::Array(features::definition(
                    &path, text, pos,
                )))
            })
        }
        other => {
            return Response::new_err(
                id,
                ErrorCode::MethodNotFound as i32,
                format!("`oprl lsp` does not handle `{other}`"),
            )
        }
    };
    match result {
        Ok(Ok(value)) => Response::new_ok(id, value),
        Ok(Err(e)) => Response::new_err(id, ErrorCode::InternalError as i32, e.to_string()),
        Err(message) => Response::new_err(id, ErrorCode::InvalidParams as i32, message),
    }
}

/// The document and position of a hover, completion or definition request.
fn position_params(
    documents: &HashMap<Uri, String>,
    params: serde_json::Value,
) -> Result<(PathBuf, &str, lsp_types::Position), String> {
    let params: lsp_types::TextDocumentPositionParams =
        serde_json::from_value(params).map_err(|e| format!("bad position parameters: {e}"))?;
    let uri = params.text_document.uri;
    let text = documents
        .get(&uri)
        .ok_or_else(|| format!("`{}` is not open", uri.as_str()))?;
    let path = features::uri_to_path(&uri)
        .ok_or_else(|| format!("`{}` is not a file URI", uri.as_str()))?;
    Ok((path, text.as_str(), params.position))
}

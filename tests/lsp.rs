//! `oprl lsp` driven over its stdio protocol: the test spawns the binary, writes
//! `Content-Length`-framed JSON-RPC to its stdin and reads its stdout, as an editor does.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: i64,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_oprl"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn `oprl lsp`");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut server = Server {
            child,
            stdin,
            stdout,
            next_id: 0,
        };
        let reply = server.request(
            "initialize",
            json!({ "capabilities": {}, "processId": null }),
        );
        let capabilities = &reply["result"]["capabilities"];
        assert_eq!(capabilities["hoverProvider"], json!(true), "{reply}");
        assert_eq!(capabilities["definitionProvider"], json!(true));
        assert_eq!(capabilities["textDocumentSync"], json!(1), "full sync");
        server.notify("initialized", json!({}));
        server
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn receive(&mut self) -> Value {
        let mut length = None;
        loop {
            let mut line = String::new();
            assert!(
                self.stdout.read_line(&mut line).unwrap() > 0,
                "the server closed stdout"
            );
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(n) = line.strip_prefix("Content-Length: ") {
                length = Some(n.parse::<usize>().unwrap());
            }
        }
        let mut body = vec![0; length.expect("a Content-Length header")];
        self.stdout.read_exact(&mut body).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Sends a request and returns its response (notifications in between are skipped).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let message = self.receive();
            if message["id"] == json!(id) {
                return message;
            }
        }
    }

    /// Waits for the diagnostics published for `uri`.
    fn diagnostics(&mut self, uri: &str) -> Vec<Value> {
        loop {
            let message = self.receive();
            if message["method"] == "textDocument/publishDiagnostics"
                && message["params"]["uri"] == uri
            {
                return message["params"]["diagnostics"].as_array().unwrap().clone();
            }
        }
    }

    fn open(&mut self, uri: &str, text: &str) -> Vec<Value> {
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "oprl", "version": 1, "text": text } }),
        );
        self.diagnostics(uri)
    }

    fn change(&mut self, uri: &str, version: i64, text: &str) -> Vec<Value> {
        self.notify(
            "textDocument/didChange",
            json!({
                "textDocument": { "uri": uri, "version": version },
                "contentChanges": [{ "text": text }]
            }),
        );
        self.diagnostics(uri)
    }

    fn at(&mut self, method: &str, uri: &str, line: u32, character: u32) -> Value {
        let reply = self.request(
            method,
            json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } }),
        );
        assert!(reply.get("error").is_none(), "{reply}");
        reply["result"].clone()
    }

    fn stop(mut self) {
        let reply = self.request("shutdown", Value::Null);
        assert_eq!(reply["result"], Value::Null);
        self.notify("exit", Value::Null);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "exit status {status}");
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn labels(items: &Value) -> Vec<String> {
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn diagnostics_follow_the_text_with_codes_and_utf16_ranges() {
    let mut server = Server::start();
    let path = root().join("recipes/sotopia.oprl");
    let uri = file_uri(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        server.open(&uri, &text),
        Vec::<Value>::new(),
        "a shipped recipe is clean"
    );

    // A typo, with non-ASCII text after it on the same line.
    let broken = text.replacen("  layers = 2", "  layrs = 2 # ünïcode", 1);
    let diagnostics = server.change(&uri, 2, &broken);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    let d = &diagnostics[0];
    let line = broken.lines().position(|l| l.contains("layrs")).unwrap() as u64;
    assert_eq!(d["range"]["start"], json!({ "line": line, "character": 2 }));
    assert_eq!(d["range"]["end"], json!({ "line": line, "character": 7 }));
    assert_eq!(d["severity"], json!(1));
    assert_eq!(d["source"], json!("oprl"));
    let code = d["code"].as_str().unwrap();
    assert!(code.starts_with('E'), "{code}");
    assert!(d["message"].as_str().unwrap().contains("`layrs`"), "{d}");
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("help: did you mean `layers`?"),
        "{d}"
    );

    // The same diagnostics as `oprl check`.
    let compilation =
        oprl::compile::compile_text("sotopia.oprl", &broken, path.parent().unwrap(), &[]);
    assert_eq!(compilation.diagnostics.len(), 1);
    assert_eq!(compilation.diagnostics[0].code.as_str(), code);

    // A column after a character outside the BMP: `𝛽` is 2 UTF-16 units.
    let astral = text.replacen("  layers = 2", "  x = \"𝛽\"; layrs = 2", 1);
    let diagnostics = server.change(&uri, 3, &astral);
    let typo = diagnostics
        .iter()
        .find(|d| d["message"].as_str().unwrap().contains("`layrs`"))
        .expect("the typo is still reported");
    // `  x = "𝛽"; ` is 12 UTF-16 units (`𝛽` is a surrogate pair) but 14 bytes.
    assert_eq!(typo["range"]["start"]["character"], json!(12), "{typo}");

    // Closing the document clears its diagnostics.
    server.notify(
        "textDocument/didClose",
        json!({ "textDocument": { "uri": uri } }),
    );
    assert_eq!(server.diagnostics(&uri), Vec::<Value>::new());
    server.stop();
}

#[test]
fn a_parse_error_is_reported_where_it_is() {
    let mut server = Server::start();
    let path = root().join("recipes/scratch_parse_error.oprl");
    let uri = file_uri(&path);
    let diagnostics = server.open(&uri, "env sokoban {\n  room = [6, 6\n}\n");
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert!(diagnostics[0]["code"].as_str().unwrap().starts_with("E01"));
    assert_eq!(diagnostics[0]["range"]["start"]["line"], json!(2));
    server.stop();
}

#[test]
fn hover_shows_doc_type_and_default_from_the_schema() {
    let mut server = Server::start();
    let path = root().join("tests/fixtures/editor_sample.oprl");
    let uri = file_uri(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    server.open(&uri, &text);
    // `  layers = 2` on line 7 (zero-based 6).
    let hover = server.at("textDocument/hover", &uri, 6, 4);
    let value = hover["contents"]["value"].as_str().unwrap();
    assert_eq!(
        value,
        "**`layers`** in `policy transformer`\n\nan integer, in [1, 256]; default `2`\n\nTransformer blocks."
    );
    assert_eq!(
        hover["range"]["start"],
        json!({ "line": 6, "character": 2 })
    );
    assert_eq!(hover["range"]["end"], json!({ "line": 6, "character": 8 }));
    // The variant of a block: its doc and keys.
    let hover = server.at("textDocument/hover", &uri, 19, 11);
    let value = hover["contents"]["value"].as_str().unwrap();
    assert!(
        value.starts_with("**`algorithm ppo`**\n\nPPO with the recipe's advantage expression."),
        "{value}"
    );
    assert!(value.contains("`clip`"), "{value}");
    // Whitespace has no hover.
    assert_eq!(server.at("textDocument/hover", &uri, 4, 0), Value::Null);
    server.stop();
}

#[test]
fn completion_offers_what_the_current_block_accepts() {
    let mut server = Server::start();
    let path = root().join("recipes/scratch_completion.oprl");
    let uri = file_uri(&path);
    let text = "env sokoban {\n  ob\n}\npolicy transformer {\n  positions = \n  sampling {\n    \n  }\n}\nadvantage = episode(outcome, norm = )\nenv \n";
    server.open(&uri, text);
    // Keys of `env sokoban`.
    let keys = labels(&server.at("textDocument/completion", &uri, 1, 4));
    assert_eq!(
        keys,
        [
            "boxes",
            "history",
            "max_turns",
            "observation",
            "prompt",
            "room",
            "search_depth"
        ]
    );
    // The values of a name-typed key.
    assert_eq!(
        labels(&server.at("textDocument/completion", &uri, 4, 14)),
        ["learned", "rope"]
    );
    // Keys of the nested `sampling` block.
    assert_eq!(
        labels(&server.at("textDocument/completion", &uri, 6, 4)),
        ["actions", "max_new_tokens", "stop", "temperature", "top_p"]
    );
    // A named argument of an estimator.
    assert_eq!(
        labels(&server.at("textDocument/completion", &uri, 9, 36)),
        ["mean", "mean_whiten", "none", "rloo", "zscore"]
    );
    // The variants of a kind.
    assert_eq!(
        labels(&server.at("textDocument/completion", &uri, 10, 4)),
        ["external", "sokoban", "sotopia", "webshop"]
    );
    // A key's completion carries its doc.
    let items = server.at("textDocument/completion", &uri, 1, 4);
    let room = &items[5];
    assert_eq!(room["label"], "room");
    assert_eq!(room["detail"], "a list of 2 integers");
    assert!(room["documentation"]["value"]
        .as_str()
        .unwrap()
        .contains("default `[6, 6]`"));
    server.stop();
}

#[test]
fn definition_finds_imports_and_names() {
    let mut server = Server::start();
    let path = root().join("recipes/ablations/gigpo.oprl");
    let uri = file_uri(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    server.open(&uri, &text);
    let use_line = text.lines().position(|l| l.starts_with("use \"")).unwrap() as u32;
    let locations = server.at("textDocument/definition", &uri, use_line, 6);
    let target = locations[0]["uri"].as_str().unwrap();
    assert!(target.ends_with("/recipes/sokoban.oprl"), "{locations}");
    // `use std::...` opens the stdlib module.
    let std_line = text
        .lines()
        .position(|l| l.starts_with("use std::"))
        .unwrap() as u32;
    let locations = server.at("textDocument/definition", &uri, std_line, 8);
    let module = locations[0]["uri"].as_str().unwrap();
    assert!(
        module.ends_with(".oprl") && module.contains("presets"),
        "{locations}"
    );
    server.stop();

    // `outcome` in the advantage is defined by `reward outcome = ...` in the imported env.
    let mut server = Server::start();
    let path = root().join("recipes/scratch_definition.oprl");
    let uri = file_uri(&path);
    let text =
        "use std::envs::sokoban\nprm { lr = 1e-4 }\nadvantage = episode(outcome) + step(prm)\n";
    server.open(&uri, text);
    let locations = server.at("textDocument/definition", &uri, 2, 22);
    let found: Vec<(String, u64)> = locations
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["uri"].as_str().unwrap().to_string(),
                l["range"]["start"]["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(found.len(), 1, "{locations}");
    assert!(found[0].0.ends_with("envs/sokoban.oprl"), "{found:?}");
    let module = PathBuf::from(found[0].0.trim_start_matches("file://"));
    let module_text = std::fs::read_to_string(module).unwrap();
    let line = module_text.lines().nth(found[0].1 as usize).unwrap();
    assert!(line.starts_with("reward outcome ="), "{line}");
    // `prm` in `step(prm)` is the `prm` block of this file.
    let locations = server.at("textDocument/definition", &uri, 2, 37);
    assert_eq!(locations[0]["uri"], json!(uri));
    assert_eq!(
        locations[0]["range"]["start"],
        json!({ "line": 1, "character": 0 })
    );
    server.stop();
}

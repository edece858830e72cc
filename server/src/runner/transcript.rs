//! Turns Codex's `--json` events into a readable transcript and the fields the job
//! reports (thread id, usage, final message).

use serde_json::Value;

use crate::job::TokenUsage;

/// What the events of one run have said so far.
#[derive(Debug, Default)]
pub struct Transcriber {
    pub thread_id: Option<String>,
    pub usage: Option<TokenUsage>,
    pub turn_completed: bool,
    pub last_agent_message: Option<String>,
    /// The last error Codex reported (`turn.failed`, `error`, error items).
    pub last_error: Option<String>,
    /// The plan line written last: an unchanged plan gets no second line.
    last_plan: String,
}

impl Transcriber {
    /// Reads one stdout line of `codex exec --json` and returns its transcript text
    /// (whole lines, each ending in `\n`; empty for events worth no line).
    pub fn line(&mut self, raw: &[u8]) -> String {
        let Ok(event) = serde_json::from_slice::<Value>(raw) else {
            // Not an event: keep whatever Codex printed.
            let text = String::from_utf8_lossy(raw);
            let text = text.trim_end();
            return if text.is_empty() {
                String::new()
            } else {
                format!("{text}\n")
            };
        };
        let str_at = |pointer: &str| event.pointer(pointer).and_then(Value::as_str);
        let mut out = String::new();
        match str_at("/type").unwrap_or("") {
            "thread.started" => self.thread_id = str_at("/thread_id").map(str::to_owned),
            "turn.completed" => {
                self.turn_completed = true;
                let count = |key: &str| {
                    event
                        .pointer(&format!("/usage/{key}"))
                        .and_then(Value::as_u64)
                        .unwrap_or(0)
                };
                let usage = TokenUsage {
                    input_tokens: count("input_tokens"),
                    cached_input_tokens: count("cached_input_tokens"),
                    output_tokens: count("output_tokens"),
                };
                out = format!(
                    "-- turn completed: {} input tokens ({} cached), {} output tokens\n",
                    usage.input_tokens, usage.cached_input_tokens, usage.output_tokens
                );
                self.usage = Some(usage);
            }
            "turn.failed" => {
                let message = str_at("/error/message")
                    .unwrap_or("unknown error")
                    .to_owned();
                out = format!("! turn failed: {message}\n");
                self.last_error = Some(message);
            }
            "error" => {
                let message = str_at("/message").unwrap_or("unknown error").to_owned();
                out = format!("! {message}\n");
                self.last_error = Some(message);
            }
            "item.started" if str_at("/item/type") == Some("command_execution") => {
                out = format!("$ {}\n", one_line(str_at("/item/command").unwrap_or("")));
            }
            "item.started" | "item.updated" if str_at("/item/type") == Some("todo_list") => {
                out = self.plan(&event["item"]);
            }
            "item.completed" => out = self.item_completed(&event),
            _ => {}
        }
        out
    }

    fn item_completed(&mut self, event: &Value) -> String {
        let item = &event["item"];
        let text = |key: &str| item.get(key).and_then(Value::as_str).unwrap_or("");
        match text("type") {
            "agent_message" => {
                self.last_agent_message = Some(text("text").to_owned());
                let mut message = text("text").trim_end().to_owned();
                message.push('\n');
                message
            }
            "command_execution" => match item.get("exit_code").and_then(Value::as_i64) {
                Some(0) | None => String::new(),
                Some(code) => format!("  (exit {code})\n"),
            },
            "file_change" => item
                .get("changes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|change| {
                    let field = |key| change.get(key).and_then(Value::as_str).unwrap_or("?");
                    format!("~ {} {}\n", field("kind"), field("path"))
                })
                .collect(),
            "mcp_tool_call" => format!("> {}.{}\n", text("server"), text("tool")),
            "reasoning" => match headline(text("text")) {
                "" => String::new(),
                headline => format!("* {headline}\n"),
            },
            "todo_list" => self.plan(item),
            "web_search" => format!("? {}\n", one_line(text("query"))),
            "error" => {
                self.last_error = Some(text("message").to_owned());
                format!("! {}\n", one_line(text("message")))
            }
            _ => String::new(),
        }
    }
}

impl Transcriber {
    /// One line for a plan (Codex's to-do list) as it stands, when it changed:
    /// `= plan 1/3: [x] Read the code; [ ] Fix it; [ ] Test it`.
    fn plan(&mut self, item: &Value) -> String {
        let steps = item.get("items").and_then(Value::as_array);
        let steps: Vec<(bool, String)> = steps
            .into_iter()
            .flatten()
            .map(|step| {
                let done = step.get("completed").and_then(Value::as_bool) == Some(true);
                let text = step.get("text").and_then(Value::as_str).unwrap_or("");
                (done, one_line(text))
            })
            .collect();
        let done = steps.iter().filter(|(done, _)| *done).count();
        let listed: Vec<String> = steps
            .iter()
            .map(|(done, text)| format!("[{}] {text}", if *done { 'x' } else { ' ' }))
            .collect();
        let line = format!("= plan {done}/{}: {}\n", steps.len(), listed.join("; "));
        if line == self.last_plan {
            return String::new();
        }
        self.last_plan.clone_from(&line);
        line
    }
}

/// The headline of a reasoning summary: its first line, without the bold marks
/// Codex puts around it.
fn headline(text: &str) -> &str {
    let first = text.trim().lines().next().unwrap_or("").trim();
    first
        .strip_prefix("**")
        .and_then(|bold| bold.strip_suffix("**"))
        .unwrap_or(first)
        .trim()
}

/// The first line of `text`, marked when more was cut.
fn one_line(text: &str) -> String {
    let mut lines = text.trim().lines();
    let first = lines.next().unwrap_or("");
    match lines.next() {
        Some(_) => format!("{first} ..."),
        None => first.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(transcriber: &mut Transcriber, events: &[&str]) -> String {
        events
            .iter()
            .map(|event| transcriber.line(event.as_bytes()))
            .collect()
    }

    #[test]
    fn a_run_becomes_readable_lines_and_fields() {
        let mut t = Transcriber::default();
        let text = feed(
            &mut t,
            &[
                r#"{"type":"thread.started","thread_id":"0199a213-81c0-7800-8aa1-bbab2a035a53"}"#,
                r#"{"type":"turn.started"}"#,
                r#"{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"bash -lc ls","status":"in_progress"}}"#,
                r#"{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"bash -lc ls","aggregated_output":"x\n","exit_code":2,"status":"failed"}}"#,
                r#"{"type":"item.completed","item":{"id":"item_2","type":"file_change","changes":[{"path":"a.rs","kind":"update"}],"status":"completed"}}"#,
                r#"{"type":"item.completed","item":{"id":"item_3","type":"agent_message","text":"All done."}}"#,
                r#"{"type":"turn.completed","usage":{"input_tokens":24763,"cached_input_tokens":24448,"output_tokens":122}}"#,
            ],
        );
        assert_eq!(
            text,
            "$ bash -lc ls\n  (exit 2)\n~ update a.rs\nAll done.\n\
             -- turn completed: 24763 input tokens (24448 cached), 122 output tokens\n"
        );
        assert_eq!(
            t.thread_id.as_deref(),
            Some("0199a213-81c0-7800-8aa1-bbab2a035a53")
        );
        assert_eq!(t.usage.unwrap().output_tokens, 122);
        assert!(t.turn_completed);
        assert_eq!(t.last_agent_message.as_deref(), Some("All done."));
    }

    #[test]
    fn reasoning_headlines_and_plan_updates_get_a_line_each() {
        let mut t = Transcriber::default();
        let text = feed(
            &mut t,
            &[
                r#"{"type":"item.completed","item":{"id":"item_0","type":"reasoning","text":"**Inspecting the parser**\n\nI will read lexer.rs first."}}"#,
                r#"{"type":"item.started","item":{"id":"item_1","type":"todo_list","items":[{"text":"Read the code","completed":false},{"text":"Fix it","completed":false}]}}"#,
                r#"{"type":"item.updated","item":{"id":"item_1","type":"todo_list","items":[{"text":"Read the code","completed":true},{"text":"Fix it","completed":false}]}}"#,
                r#"{"type":"item.completed","item":{"id":"item_1","type":"todo_list","items":[{"text":"Read the code","completed":true},{"text":"Fix it","completed":false}]}}"#,
                r#"{"type":"item.completed","item":{"id":"item_2","type":"reasoning","text":"Plain summary\nwith more"}}"#,
                r#"{"type":"item.completed","item":{"id":"item_3","type":"reasoning","text":""}}"#,
            ],
        );
        assert_eq!(
            text,
            "* Inspecting the parser\n\
             = plan 0/2: [ ] Read the code; [ ] Fix it\n\
             = plan 1/2: [x] Read the code; [ ] Fix it\n\
             * Plain summary\n"
        );
    }

    #[test]
    fn errors_are_kept_and_garbage_passes_through() {
        let mut t = Transcriber::default();
        let text = feed(
            &mut t,
            &[
                r#"{"type":"turn.failed","error":{"message":"stream disconnected"}}"#,
                "not json at all",
            ],
        );
        assert_eq!(
            text,
            "! turn failed: stream disconnected\nnot json at all\n"
        );
        assert_eq!(t.last_error.as_deref(), Some("stream disconnected"));
    }
}

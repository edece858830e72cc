//! The names of job states and sandbox levels as people and agents write them, in
//! one place for the CLI, the JSON shapes and the MCP bridge.

use clap::builder::{PossibleValuesParser, TypedValueParser};

use crate::pb;

/// Every state a job can be in, by its name (`state` in the JSON shapes).
pub const STATES: [(&str, pb::JobState); 5] = [
    ("queued", pb::JobState::Queued),
    ("running", pb::JobState::Running),
    ("succeeded", pb::JobState::Succeeded),
    ("failed", pb::JobState::Failed),
    ("cancelled", pb::JobState::Cancelled),
];

/// The same states by the names the codex-async tools gave them (`status` in the
/// JSON shapes).
pub const STATUSES: [(&str, pb::JobState); 5] = [
    ("queued", pb::JobState::Queued),
    ("running", pb::JobState::Running),
    ("done", pb::JobState::Succeeded),
    ("error", pb::JobState::Failed),
    ("cancelled", pb::JobState::Cancelled),
];

/// Every sandbox level, from most to least restricted. `bypass` is Codex's
/// `--dangerously-bypass-approvals-and-sandbox`.
pub const SANDBOXES: [(&str, pb::Sandbox); 4] = [
    ("read-only", pb::Sandbox::ReadOnly),
    ("workspace-write", pb::Sandbox::WorkspaceWrite),
    ("danger-full-access", pb::Sandbox::DangerFullAccess),
    ("bypass", pb::Sandbox::Bypass),
];

/// How hard the model reasons, as Codex's `model_reasoning_effort` names it.
pub const REASONING_EFFORTS: [(&str, pb::ReasoningEffort); 3] = [
    ("low", pb::ReasoningEffort::Low),
    ("medium", pb::ReasoningEffort::Medium),
    ("high", pb::ReasoningEffort::High),
];

fn name_of<T: PartialEq + Copy>(table: &[(&'static str, T)], value: T) -> Option<&'static str> {
    table
        .iter()
        .find(|(_, known)| *known == value)
        .map(|(name, _)| *name)
}

fn value_of<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, value)| *value)
}

/// "a, b, c": the names of a table, for messages.
fn listed<T>(table: &[(&str, T)]) -> String {
    let names: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
    names.join(", ")
}

/// A state's name; `unspecified` for a server that sent none.
pub fn state_name(state: pb::JobState) -> &'static str {
    name_of(&STATES, state).unwrap_or("unspecified")
}

/// A state's codex-async name; a job with no state counts as queued.
pub fn status_name(state: pb::JobState) -> &'static str {
    name_of(&STATUSES, state).unwrap_or("queued")
}

pub fn sandbox_name(sandbox: pb::Sandbox) -> &'static str {
    name_of(&SANDBOXES, sandbox).unwrap_or("unspecified")
}

/// The state named `name`, by its own name or its codex-async one.
pub fn parse_state(name: &str) -> Result<pb::JobState, String> {
    value_of(&STATES, name)
        .or_else(|| value_of(&STATUSES, name))
        .ok_or_else(|| {
            format!(
                "state must be one of {} (or {}); got {name:?}",
                listed(&STATES),
                listed(&STATUSES[2..4])
            )
        })
}

pub fn parse_sandbox(name: &str) -> Result<pb::Sandbox, String> {
    value_of(&SANDBOXES, name).ok_or_else(|| {
        format!(
            "sandbox must be one of {}; got {name:?}",
            listed(&SANDBOXES)
        )
    })
}

pub fn parse_reasoning_effort(name: &str) -> Result<pb::ReasoningEffort, String> {
    value_of(&REASONING_EFFORTS, name).ok_or_else(|| {
        format!(
            "reasoning effort must be one of {}; got {name:?}",
            listed(&REASONING_EFFORTS)
        )
    })
}

/// A reasoning effort's name; `None` for Codex's default.
pub fn reasoning_effort_name(effort: pb::ReasoningEffort) -> Option<&'static str> {
    name_of(&REASONING_EFFORTS, effort)
}

/// A clap parser for a reasoning effort argument, listing the names in `--help`.
pub fn reasoning_effort_arg() -> impl TypedValueParser<Value = pb::ReasoningEffort> {
    PossibleValuesParser::new(REASONING_EFFORTS.map(|(name, _)| name))
        .map(|name: String| parse_reasoning_effort(&name).expect("a listed name"))
}

/// A clap parser for a state argument, listing the names in `--help`.
pub fn state_arg() -> impl TypedValueParser<Value = pb::JobState> {
    PossibleValuesParser::new(STATES.map(|(name, _)| name))
        .map(|name: String| parse_state(&name).expect("a listed name"))
}

/// A clap parser for a sandbox argument, listing the names in `--help`.
pub fn sandbox_arg() -> impl TypedValueParser<Value = pb::Sandbox> {
    PossibleValuesParser::new(SANDBOXES.map(|(name, _)| name))
        .map(|name: String| parse_sandbox(&name).expect("a listed name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back() {
        for (name, state) in STATES {
            assert_eq!(state_name(state), name);
            assert_eq!(parse_state(name), Ok(state));
        }
        for (name, state) in STATUSES {
            assert_eq!(status_name(state), name);
            assert_eq!(parse_state(name), Ok(state));
        }
        for (name, sandbox) in SANDBOXES {
            assert_eq!(sandbox_name(sandbox), name);
            assert_eq!(parse_sandbox(name), Ok(sandbox));
        }
        for (name, effort) in REASONING_EFFORTS {
            assert_eq!(reasoning_effort_name(effort), Some(name));
            assert_eq!(parse_reasoning_effort(name), Ok(effort));
        }
        assert_eq!(
            parse_reasoning_effort("max"),
            Err("reasoning effort must be one of low, medium, high; got \"max\"".into())
        );
    }

    #[test]
    fn unknown_names_are_refused_with_the_known_ones() {
        assert_eq!(
            parse_state("finished"),
            Err("state must be one of queued, running, succeeded, failed, cancelled (or done, error); got \"finished\"".into())
        );
        assert_eq!(
            parse_sandbox("full-auto"),
            Err("sandbox must be one of read-only, workspace-write, danger-full-access, bypass; got \"full-auto\"".into())
        );
    }
}

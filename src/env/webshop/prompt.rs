//! Prompts and action parsing for WebShop: verl-agent's templates, observation reformatting,
//! history lines and `webshop_projection`, plus a compact template for small models.

/// verl-agent's first-turn (or history-free) template. Note the U+2011 hyphen in "e‑commerce".
pub const WEBSHOP_TEMPLATE_NO_HIS: &str = "
You are an expert autonomous agent operating in the WebShop e\u{2011}commerce environment. 
Your task is to: {task_description}.
Your current observation is: {current_observation}.
Your admissible actions of the current situation are: 
[
{available_actions}
].

Now it's your turn to take one action for the current step.
You should first reason step-by-step about the current situation, then think carefully which admissible action best advances the shopping goal. This reasoning process MUST be enclosed within <think> </think> tags. 
Once you've finished your reasoning, you should choose an admissible action for current step and present it within <action> </action> tags.
";

/// verl-agent's template with history.
pub const WEBSHOP_TEMPLATE: &str = "
You are an expert autonomous agent operating in the WebShop e\u{2011}commerce environment.
Your task is to: {task_description}.
Prior to this step, you have already taken {step_count} step(s). Below are the most recent {history_length} observations and the corresponding actions you took: {action_history}
You are now at step {current_step} and your current observation is: {current_observation}.
Your admissible actions of the current situation are: 
[
{available_actions}
].

Now it's your turn to take one action for the current step.
You should first reason step-by-step about the current situation, then think carefully which admissible action best advances the shopping goal. This reasoning process MUST be enclosed within <think> </think> tags. 
Once you've finished your reasoning, you should choose an admissible action for current step and present it within <action> </action> tags.
";

/// verl-agent falls back to the history-free template above this many characters.
pub const MAX_PROMPT_CHARS: usize = 13000;

/// One remembered turn: the (reformatted) observation before the action, and the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub observation: String,
    pub action: String,
}

/// verl-agent's `format_obs`: the parts after the instruction, each in single quotes; the raw
/// text when the instruction is not one of the parts.
pub fn format_observation(observation: &str, task: &str) -> String {
    let parts: Vec<&str> = observation.split(" [SEP] ").collect();
    match parts.iter().position(|p| *p == task) {
        Some(i) => parts[i + 1..]
            .iter()
            .map(|p| format!("'{p}'"))
            .collect::<Vec<_>>()
            .join(" [SEP] "),
        None => observation.to_string(),
    }
}

/// verl-agent's list of admissible actions inside the prompt.
pub fn format_available_actions(actions: &[String]) -> String {
    actions
        .iter()
        .map(|a| format!("'{a}',"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `SimpleMemory.fetch`: the last `history` turns as numbered lines, and how many there are.
pub fn history_lines(turns: &[Turn], history: usize) -> (String, usize) {
    let start = turns.len().saturating_sub(history);
    let lines: Vec<String> = turns[start..]
        .iter()
        .enumerate()
        .map(|(j, t)| {
            let n = start + j + 1;
            format!(
                "[Observation {n}: '{}', Action {n}: '{}']",
                t.observation, t.action
            )
        })
        .collect();
    (lines.join("\n"), turns.len() - start)
}

fn fill(template: &str, pairs: &[(&str, &str)]) -> String {
    // Replace in one pass so text inside a value is never re-substituted.
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}').and_then(|close| {
            let key = &after[..close];
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (close, *v))
        }) {
            Some((close, value)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// verl-agent's prompt for the current turn.
pub fn verl_prompt(
    task: &str,
    observation: &str,
    actions: &[String],
    turns: &[Turn],
    history: usize,
) -> String {
    let available = format_available_actions(actions);
    let no_history = || {
        fill(
            WEBSHOP_TEMPLATE_NO_HIS,
            &[
                ("task_description", task),
                ("current_observation", observation),
                ("available_actions", &available),
            ],
        )
    };
    if turns.is_empty() || history == 0 {
        return no_history();
    }
    let (lines, valid) = history_lines(turns, history);
    let prompt = fill(
        WEBSHOP_TEMPLATE,
        &[
            ("task_description", task),
            ("step_count", &turns.len().to_string()),
            ("history_length", &valid.to_string()),
            ("action_history", &lines),
            ("current_step", &(turns.len() + 1).to_string()),
            ("current_observation", observation),
            ("available_actions", &available),
        ],
    );
    if prompt.chars().count() > MAX_PROMPT_CHARS {
        no_history()
    } else {
        prompt
    }
}

/// A short prompt for small models: the goal, the last actions, the page as action lines
/// (see `Session::compact_lines`), and the opening `<action>` tag for the model to continue.
pub fn compact_prompt(task: &str, page_lines: &[String], turns: &[Turn], history: usize) -> String {
    let start = turns.len().saturating_sub(history);
    let mut out = format!("Goal: {task}\n");
    for t in &turns[start..] {
        out.push_str(&format!("> {}\n", t.action));
    }
    for line in page_lines {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("<action>");
    out
}

/// verl-agent's `webshop_projection` for one response: the lower-cased text between `<action>`
/// and `</action>` (valid only if `<think>` and `</think>` are present and no CJK character), or
/// the last 20 characters of the lower-cased text (invalid).
pub fn verl_projection(response: &str) -> (String, bool) {
    let lower = response.to_lowercase();
    let (start, end) = (lower.find("<action>"), lower.find("</action>"));
    let (action, mut valid) = match (start, end) {
        (Some(s), Some(e)) => {
            let from = s + "<action>".len();
            // Python slicing yields "" when the end tag precedes the start tag.
            let extracted = if e >= from {
                lower[from..e].trim().to_string()
            } else {
                String::new()
            };
            (extracted, true)
        }
        _ => {
            let chars: Vec<char> = lower.chars().collect();
            return (
                chars[chars.len().saturating_sub(20)..].iter().collect(),
                false,
            );
        }
    };
    if !(response.contains("<think>") && response.contains("</think>")) {
        valid = false;
    }
    if response
        .chars()
        .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
    {
        valid = false;
    }
    (action, valid)
}

/// Projection for the compact prompt: the prompt already opened `<action>`, so the action is the
/// text up to `</action>` (or the first line), after an optional repeated `<action>`.
pub fn compact_projection(response: &str) -> (String, bool) {
    let lower = response.to_lowercase();
    let body = match lower.find("<action>") {
        Some(s) => &lower[s + "<action>".len()..],
        None => lower.as_str(),
    };
    let action = match body.find("</action>") {
        Some(e) => &body[..e],
        None => body.lines().next().unwrap_or(""),
    };
    let action = action.trim().to_string();
    let valid = !action.is_empty();
    (action, valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_matches_verl_agent() {
        assert_eq!(
            verl_projection("<think>ok</think><action>Click[Buy Now]</action>"),
            ("click[buy now]".to_string(), true)
        );
        assert_eq!(
            verl_projection("<action>search[x]</action>"),
            ("search[x]".to_string(), false)
        );
        assert_eq!(
            verl_projection("I will click the first product now"),
            ("he first product now".to_string(), false)
        );
        assert_eq!(
            verl_projection("<think>好</think><action>click[x]</action>").1,
            false
        );
        assert_eq!(
            compact_projection("click[b00x]</action>junk"),
            ("click[b00x]".to_string(), true)
        );
        assert_eq!(
            compact_projection(" search[red tee]\nmore"),
            ("search[red tee]".to_string(), true)
        );
    }

    #[test]
    fn observation_reformatting_and_history() {
        let obs =
            "Instruction: [SEP] find a tee [SEP] Back to Search [SEP] Page 1 (Total results: 2)";
        assert_eq!(
            format_observation(obs, "find a tee"),
            "'Back to Search' [SEP] 'Page 1 (Total results: 2)'"
        );
        assert_eq!(format_observation("other", "find a tee"), "other");
        let turns = vec![
            Turn {
                observation: "'Search'".into(),
                action: "search[tee]".into(),
            },
            Turn {
                observation: "'Back to Search'".into(),
                action: "click[b1]".into(),
            },
        ];
        let (lines, n) = history_lines(&turns, 1);
        assert_eq!(
            (lines.as_str(), n),
            (
                "[Observation 2: ''Back to Search'', Action 2: 'click[b1]']",
                1
            )
        );
        let prompt = verl_prompt(
            "find a tee",
            "'Buy Now'",
            &["click[buy now]".to_string()],
            &turns,
            2,
        );
        assert!(prompt.contains(
            "you have already taken 2 step(s). Below are the most recent 2 observations"
        ));
        assert!(
            prompt.contains("You are now at step 3 and your current observation is: 'Buy Now'.")
        );
        assert!(prompt.contains("[\n'click[buy now]',\n]."));
        let first = verl_prompt(
            "find a tee",
            "'Search'",
            &["search[<your query>]".to_string()],
            &[],
            2,
        );
        assert!(first.starts_with("\nYou are an expert autonomous agent operating in the WebShop e\u{2011}commerce environment. \nYour task is to: find a tee.\nYour current observation is: 'Search'."));
    }
}

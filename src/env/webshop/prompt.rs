//! Prompts and action parsing for WebShop: verl-agent's templates, observation reformatting,
//! history lines and `webshop_projection`, plus a compact template for small models.

use crate::env::prompt::{fill, memory_lines, recent};

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
    memory_lines(turns, history, |t| {
        (t.observation.as_str(), t.action.as_str())
    })
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
    let mut out = format!("Goal: {task}\n");
    for t in recent(turns, history).1 {
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

/// Projection for the compact prompt, for small models (as Sokoban's compact prompt takes the
/// first move word of an answer). The prompt already opened `<action>`, so the answer is the
/// text up to `</action>` (or its first line), after an optional repeated `<action>`, lower-cased
/// and trimmed. Its action, tried in order:
/// 1. the first written `search[...]` or `click[...]` in it;
/// 2. on a page with a search bar, the whole answer as the query (`search[answer]`);
/// 3. the admissible click whose label the answer names first (`buy now`, an ASIN, an option
///    value; the longest label at the same place).
///
/// Valid means the action is admissible on the page (a search where there is a search bar, a
/// listed click); anything else is WebShop's no-op, with the invalid-action penalty. (The
/// environment also counts a compact search that finds nothing as invalid.)
pub fn compact_projection(response: &str, admissible: &[String]) -> (String, bool) {
    let lower = response.to_lowercase();
    let body = match lower.find("<action>") {
        Some(s) => &lower[s + "<action>".len()..],
        None => lower.as_str(),
    };
    let body = match body.find("</action>") {
        Some(e) => &body[..e],
        None => body.lines().next().unwrap_or(""),
    }
    .trim();
    let has_search = admissible.iter().any(|a| a.starts_with("search["));
    let action = if let Some(written) = first_written_action(body) {
        written.to_string()
    } else if has_search && !body.is_empty() {
        format!("search[{body}]")
    } else if let Some(label) = first_named_label(body, admissible) {
        format!("click[{label}]")
    } else {
        return (body.to_string(), false);
    };
    let valid = if action.starts_with("search[") {
        has_search
    } else {
        admissible.contains(&action)
    };
    (action, valid)
}

/// The first `search[...]`/`click[...]` with a non-empty argument in `text`.
fn first_written_action(text: &str) -> Option<&str> {
    ["search[", "click["]
        .into_iter()
        .filter_map(|name| {
            let mut from = 0;
            while let Some(at) = text[from..].find(name).map(|i| from + i) {
                let arg_start = at + name.len();
                match text[arg_start..].find(']') {
                    Some(close) if close > 0 => return Some((at, arg_start + close + 1)),
                    _ => from = arg_start,
                }
            }
            None
        })
        .min()
        .map(|(start, end)| &text[start..end])
}

/// The label of the admissible click that `text` names first (longest at the same place).
fn first_named_label<'a>(text: &str, admissible: &'a [String]) -> Option<&'a str> {
    admissible
        .iter()
        .filter_map(|a| a.strip_prefix("click[")?.strip_suffix(']'))
        .filter(|label| !label.is_empty() && *label != "search")
        .filter_map(|label| text.find(label).map(|at| (at, label)))
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.len().cmp(&a.1.len())))
        .map(|(_, label)| label)
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
        assert!(!verl_projection("<think>好</think><action>click[x]</action>").1);
    }

    #[test]
    fn compact_projection_reads_written_named_and_typed_actions() {
        let strings = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let search_page = strings(&["search[<your query>]", "click[search]"]);
        let results = strings(&[
            "click[back to search]",
            "click[next >]",
            "click[b00x]",
            "click[b00y]",
        ]);
        let item = strings(&[
            "click[back to search]",
            "click[< prev]",
            "click[buy now]",
            "click[black]",
            "click[navy blue]",
            "click[blue]",
        ]);
        let p = |text: &str, page: &[String]| compact_projection(text, page);
        // Written actions, anywhere in the answer.
        assert_eq!(
            p("click[b00x]</action>junk", &results),
            ("click[b00x]".into(), true)
        );
        assert_eq!(
            p("ok click[b00y] then", &results),
            ("click[b00y]".into(), true)
        );
        assert_eq!(
            p(" search[red tee]\nmore", &search_page),
            ("search[red tee]".into(), true)
        );
        assert_eq!(
            p("click[] search[x]", &search_page),
            ("search[x]".into(), true)
        );
        // A written action that is not on the page is read, but invalid.
        assert_eq!(p("click[b00z]", &results), ("click[b00z]".into(), false));
        assert_eq!(
            p("search[shoes]", &results),
            ("search[shoes]".into(), false)
        );
        // On the search page the answer is the query.
        assert_eq!(
            p("Red Tee</action>", &search_page),
            ("search[red tee]".into(), true)
        );
        // Elsewhere, the first admissible label named; the longest at the same place.
        assert_eq!(
            p("i pick b00y or b00x", &results),
            ("click[b00y]".into(), true)
        );
        assert_eq!(
            p("navy blue please", &item),
            ("click[navy blue]".into(), true)
        );
        assert_eq!(
            p("<action>Buy Now</action>", &item),
            ("click[buy now]".into(), true)
        );
        assert_eq!(p("nothing here", &item), ("nothing here".into(), false));
        assert_eq!(p("", &search_page), ("".into(), false));
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

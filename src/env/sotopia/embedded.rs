//! oprl's own scenario set, written by oprl's authors in SOTOPIA's JSON format: 36
//! environment profiles (negotiation, favours, sharing, persuasion), 12 characters and 108
//! combos, with structured goals (`goal_rubrics.json`) for the embedded rubric judge.

use std::path::Path;

use super::profiles::ScenarioSet;

const ENVS: &str = include_str!("data/envs.json");
const AGENTS: &str = include_str!("data/agents.json");
const COMBOS: &str = include_str!("data/env_agent_combos.json");

/// The embedded scenario set.
pub fn embedded_scenarios() -> ScenarioSet {
    ScenarioSet::from_texts(
        (Path::new("<embedded>/envs.json"), ENVS),
        (Path::new("<embedded>/agents.json"), AGENTS),
        (Path::new("<embedded>/env_agent_combos.json"), COMBOS),
    )
    .expect("the embedded scenario set is valid (checked by tests)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_set_covers_the_four_kinds() {
        let set = embedded_scenarios();
        assert!(set.envs.len() >= 30);
        assert_eq!(set.agents.len(), 12);
        assert_eq!(set.combos.len(), 3 * set.envs.len());
        for kind in ["negotiation", "favour", "sharing", "persuasion"] {
            let n = set
                .envs
                .values()
                .filter(|e| e.source == format!("oprl-{kind}"))
                .count();
            assert!(n >= 6, "{kind}: {n}");
        }
        // Every agent plays in some combo, on both sides.
        for pk in set.agents.keys() {
            assert!(set.combos.iter().any(|c| &c.agent_ids[0] == pk));
            assert!(set.combos.iter().any(|c| &c.agent_ids[1] == pk));
        }
    }
}

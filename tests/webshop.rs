//! WebShop: conformance with WebShop's `get_reward`, hand-built reward cases, loading the real
//! data files, BM25 ranking sanity, page transitions and the Environment interface.

use indexmap::IndexMap;
use oprl::env::webshop::catalogue::{product_from_value, Catalogue, Product};
use oprl::env::webshop::fuzz::token_set_ratio;
use oprl::env::webshop::goals::{Goal, GoalOptions};
use oprl::env::webshop::nouns::title_nouns;
use oprl::env::webshop::reward::{self, normalize_color, normalized_goal_options};
use oprl::env::webshop::search::SearchIndex;
use oprl::env::webshop::{generate, WebshopEnv, WebshopWorld};
use oprl::env::{Environment, Split, Task};
use oprl::graph::{PromptStyle, WebshopOutcome, WebshopSpec};
use serde_json::Value;
use std::sync::Arc;

fn test_data(path: &str) -> String {
    format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn goal_from_value(g: &Value) -> Goal {
    let s = |k: &str| g[k].as_str().unwrap_or_default().to_string();
    let goal_options = match &g["goal_options"] {
        Value::Object(map) => GoalOptions::Pairs(
            map.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect(),
        ),
        Value::Array(list) => GoalOptions::List(
            list.iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect(),
        ),
        _ => GoalOptions::List(vec![]),
    };
    Goal {
        asin: s("asin"),
        category: s("category"),
        query: s("query"),
        name: s("name"),
        product_category: s("product_category"),
        instruction_text: s("instruction_text"),
        attributes: g["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect(),
        goal_options,
        price_upper: g["price_upper"].as_f64().unwrap(),
        weight: 1.0,
    }
}

/// A string, or a Python tuple (JSON list) as thefuzz sees it: its repr.
fn text_of(v: &Value) -> String {
    match v {
        Value::Array(pair) => oprl::env::webshop::fuzz::python_pair_repr(
            pair[0].as_str().unwrap(),
            pair[1].as_str().unwrap(),
        ),
        other => other.as_str().unwrap().to_string(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn reward_matches_webshop_conformance_cases() {
    let data: Value = serde_json::from_str(
        &std::fs::read_to_string(test_data("conformance/webshop_reward.json")).unwrap(),
    )
    .unwrap();
    let cases = data["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    let mut tagger_agreements = 0usize;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let inputs = &case["inputs"];
        let product = product_from_value(&inputs["purchased_product"], None).unwrap();
        let goal = goal_from_value(&inputs["goal"]);
        let price = inputs["price"].as_f64().unwrap();
        let options: IndexMap<String, String> = inputs["options"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let expected = &case["outputs"];
        let inter = &case["intermediates"];

        // The reward with spaCy's noun lists (from the intermediates) must match exactly; with
        // our heuristic tagger it must match whenever the tagger finds the same nouns.
        let spacy_purchased = strings(&inter["purchased_name_nouns"]);
        let spacy_desired = strings(&inter["desired_name_nouns"]);
        let spacy_type = reward::type_reward_from_nouns(
            product.query == goal.query,
            reward::category_match(&product.product_category, &goal.product_category),
            &spacy_purchased,
            &spacy_desired,
        );
        let with_spacy = reward::combine(spacy_type, &product, &goal, price, &options);
        let total = expected["total_reward"].as_f64().unwrap();
        assert!(
            (with_spacy.total - total).abs() < 1e-6,
            "{name}: {} vs {total}",
            with_spacy.total
        );
        let tagger_agrees = title_nouns(&product.name) == spacy_purchased
            && title_nouns(&goal.name) == spacy_desired;
        if tagger_agrees {
            tagger_agreements += 1;
            let ours = reward::get_reward(&product, &goal, price, &options);
            assert!(
                (ours.total - total).abs() < 1e-6,
                "{name} (our tagger): {} vs {total}",
                ours.total
            );
        }

        let info = &expected["info"];
        let close = |a: f64, key: &str| {
            assert!(
                (a - info[key].as_f64().unwrap()).abs() < 1e-9,
                "{name}: {key}"
            )
        };
        close(with_spacy.r_type, "r_type");
        close(with_spacy.r_att, "r_att");
        close(with_spacy.w_att, "w_att");
        close(with_spacy.title_score, "title_score");
        assert_eq!(
            with_spacy.query_match,
            info["query_match"].as_bool().unwrap(),
            "{name}"
        );
        assert_eq!(
            with_spacy.category_match,
            info["category_match"].as_bool().unwrap(),
            "{name}"
        );
        if info["r_option"].is_number() {
            close(with_spacy.r_option.unwrap(), "r_option");
            close(with_spacy.w_option.unwrap(), "w_option");
        }
        assert_eq!(with_spacy.r_price, info["r_price"].as_bool(), "{name}");
        close(with_spacy.w_price.unwrap(), "w_price");

        // Intermediates: fuzzy scores (thefuzz 0.19, difflib backend), normalised options.
        for triple in inter["attr_fuzz_scores"].as_array().unwrap() {
            let (g, p, s) = (
                triple[0].as_str().unwrap(),
                triple[1].as_str().unwrap(),
                triple[2].as_u64().unwrap(),
            );
            assert_eq!(
                u64::from(token_set_ratio(p, g)),
                s,
                "{name}: attr {g} vs {p}"
            );
        }
        for triple in inter["option_fuzz_scores"].as_array().unwrap() {
            let (g, p, s) = (
                text_of(&triple[0]),
                text_of(&triple[1]),
                triple[2].as_u64().unwrap(),
            );
            assert_eq!(
                u64::from(token_set_ratio(&p, &g)),
                s,
                "{name}: option {g} vs {p}"
            );
        }
        // serde_json's maps are sorted, so these lists are compared without their order.
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        let purchased_normalized: Vec<String> =
            options.values().map(|o| normalize_color(o)).collect();
        let expected_purchased: Vec<String> = inter["normalized_purchased_options"]
            .as_array()
            .unwrap()
            .iter()
            .map(text_of)
            .collect();
        assert_eq!(
            sorted(purchased_normalized),
            sorted(expected_purchased),
            "{name}"
        );
        let goal_normalized: Vec<String> = normalized_goal_options(&goal.goal_options)
            .iter()
            .map(|o| o.fuzz_text())
            .collect();
        let expected_goal: Vec<String> = inter["normalized_goal_options"]
            .as_array()
            .unwrap()
            .iter()
            .map(text_of)
            .collect();
        assert_eq!(sorted(goal_normalized), sorted(expected_goal), "{name}");
        let (r_att, n_att) = (
            inter["attribute_reward"][0].as_f64().unwrap(),
            inter["attribute_reward"][1].as_u64().unwrap(),
        );
        assert_eq!(
            (with_spacy.r_att, with_spacy.num_attr_matches as u64),
            (r_att, n_att),
            "{name}"
        );
    }
    println!(
        "heuristic tagger gives spaCy's noun lists on {tagger_agreements}/{} cases",
        cases.len()
    );
    assert!(tagger_agreements > 0);
}

/// A product and a synthetic goal on it with three attributes and three options.
fn hand_built() -> (Product, Goal) {
    let product = product_from_value(
        &serde_json::json!({
            "asin": "B0HAND0001", "name": "Stainless Steel Water Bottle with Straw Lid",
            "full_description": "Keeps drinks cold for 24 hours.", "pricing": [19.99],
            "small_description": ["Leak proof lid", "BPA free"], "category": "garden",
            "query": "water bottles", "product_category": "Home & Kitchen › Kitchen & Dining › Storage",
            "Attributes": ["bpa free", "leak proof", "stainless steel"],
            "options": {"color": ["black", "navy blue"], "size": ["12 oz", "32 oz"], "pattern": ["solid", "striped"]}
        }),
        None,
    )
    .unwrap();
    let mut options = IndexMap::new();
    options.insert("color".to_string(), "black".to_string());
    options.insert("pattern".to_string(), "striped".to_string());
    options.insert("size".to_string(), "32 oz".to_string());
    let goal = Goal {
        asin: product.asin.clone(),
        category: product.category.clone(),
        query: product.query.clone(),
        name: product.title.clone(),
        product_category: product.product_category.clone(),
        instruction_text: "Find me bpa free, leak proof water bottles with stainless steel"
            .to_string(),
        attributes: vec![
            "bpa free".into(),
            "leak proof".into(),
            "stainless steel".into(),
        ],
        goal_options: GoalOptions::Pairs(options),
        price_upper: 30.0,
        weight: 1.0,
    };
    (product, goal)
}

#[test]
fn reward_on_hand_built_cases() {
    let (product, goal) = hand_built();
    let GoalOptions::Pairs(wanted) = goal.goal_options.clone() else {
        unreachable!()
    };
    // Exact purchase: everything matches.
    let exact = reward::get_reward(&product, &goal, 19.99, &wanted);
    assert_eq!(exact.total, 1.0);
    assert_eq!(
        (
            exact.num_attr_matches,
            exact.num_option_matches,
            exact.r_price
        ),
        (3, 3, Some(true))
    );

    // Two of three options right, and only one attribute found: (1 + 2 + 1) / 7 = 0.5714...
    let mut two_of_three = wanted.clone();
    two_of_three.insert("size".to_string(), "12 oz".to_string());
    let mut weaker = product.clone();
    weaker.attributes = vec!["bpa free".into()];
    weaker.bullet_points = vec![];
    weaker.description = String::new();
    weaker.title = "Water Bottle".into();
    let partial = reward::get_reward(&weaker, &goal, 19.99, &two_of_three);
    assert_eq!(
        (partial.num_attr_matches, partial.num_option_matches),
        (1, 2)
    );
    assert!(
        (partial.total - 4.0 / 7.0).abs() < 1e-12,
        "{}",
        partial.total
    );
    assert_eq!(format!("{:.4}", partial.total), "0.5714");

    // Same purchase of a product of another type: no query or category match, title nouns
    // overlap 1/5 = 0.2 (not > 0.2) -> r_type 0.5 -> 2/7 = 0.2857...
    let mut other_type = weaker.clone();
    other_type.name = "Bottle Brush Cleaning Kit Set".into();
    other_type.query = "cleaning brushes".into();
    other_type.product_category = "Tools › Cleaning".into();
    let mut goal5 = goal.clone();
    goal5.name = "Bottle Straw Lid Sport Cap".into();
    let mismatch = reward::get_reward(&other_type, &goal5, 19.99, &two_of_three);
    assert_eq!((mismatch.title_score, mismatch.r_type), (0.2, 0.5));
    assert!(
        (mismatch.total - 2.0 / 7.0).abs() < 1e-12,
        "{}",
        mismatch.total
    );
    assert_eq!(format!("{:.4}", mismatch.total), "0.2857");

    // The ('name', 'value') quirk: a non-colour goal option is scored as its tuple text, which
    // still matches the plain value at 100; a colour tuple normalises to the colour.
    assert_eq!(token_set_ratio("32 oz", "('size', '32 oz')"), 100);
    // Over budget: the price part fails.
    let pricey = reward::get_reward(&product, &goal, 31.0, &wanted);
    assert!((pricey.total - 6.0 / 7.0).abs() < 1e-12);
}

fn real_catalogue() -> Catalogue {
    Catalogue::load(
        std::path::Path::new(&test_data("webshop/documents_100.jsonl")),
        Some(std::path::Path::new(&test_data(
            "webshop/items_ins_v2_1000.json",
        ))),
    )
    .unwrap()
}

#[test]
fn loads_the_real_files() {
    let catalogue = real_catalogue();
    assert_eq!(catalogue.products.len(), 100);
    let first = &catalogue.products[0];
    assert_eq!(first.asin, "B06Y3VLDFB");
    assert_eq!(
        first.title,
        "Vhomes Lights Reclaimed Wood Console Table The Genessis Collection Sofa-Tables"
    );
    assert_eq!(first.price_tag, "$877.8");
    assert_eq!(first.pricing, vec![877.8]);
    assert_eq!(first.query, "console tables");
    assert_eq!(first.attributes, vec!["console table", "solid wood"]);
    assert_eq!(first.bullet_points.len(), 4);
    let with_instruction = catalogue
        .products
        .iter()
        .filter(|p| p.instruction_text.is_some())
        .count();
    assert_eq!(with_instruction, 44);
    let with_options = catalogue
        .products
        .iter()
        .find(|p| p.options.contains_key("size"))
        .unwrap();
    assert_eq!(
        with_options.options["size"],
        vec!["x-small", "small", "medium", "large", "x-large"]
    );
    // Goals: one per option combination of every product with an instruction (computed from
    // the files independently: 501), all with a price bound or the no-bound value.
    let world = WebshopWorld::new(catalogue, 1, None).unwrap();
    assert_eq!(world.goals.len(), 501);
    for g in &world.goals {
        assert!(g.instruction_text.starts_with("Find me"));
        let bound = g.price_upper;
        assert!(
            bound == 1_000_000.0
                || (bound % 10.0 == 0.0
                    && g.instruction_text
                        .ends_with(&format!("price lower than {bound:.2} dollars")))
        );
    }
    // The raw JSON-list form loads the same products.
    let docs: Vec<Value> = std::fs::read_to_string(test_data("webshop/documents_100.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["product"].clone())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let list_path = dir.path().join("items.json");
    std::fs::write(&list_path, serde_json::to_string(&docs).unwrap()).unwrap();
    let from_list = Catalogue::load(
        &list_path,
        Some(std::path::Path::new(&test_data(
            "webshop/items_ins_v2_1000.json",
        ))),
    )
    .unwrap();
    assert_eq!(from_list, real_catalogue());
}

/// Fractions of goals whose product ranks in the top 10 for the goal's own instruction: over
/// one goal per product (the instruction without option text differs only by options), and over
/// every goal.
fn top10_rates(world: &WebshopWorld) -> (f64, usize, f64, usize) {
    let mut per_product: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
    let mut all_hits = 0usize;
    for goal in &world.goals {
        let target = world.position(&goal.asin).unwrap();
        let hit = world
            .index
            .search(&goal.instruction_text, 50)
            .iter()
            .take(10)
            .any(|&p| p == target);
        all_hits += usize::from(hit);
        per_product.entry(goal.asin.as_str()).or_insert(hit);
    }
    let product_hits = per_product.values().filter(|h| **h).count();
    (
        product_hits as f64 / per_product.len() as f64,
        per_product.len(),
        all_hits as f64 / world.goals.len() as f64,
        world.goals.len(),
    )
}

#[test]
fn bm25_ranks_goal_products_high() {
    let real = WebshopWorld::new(real_catalogue(), 1, None).unwrap();
    let (real_rate, real_n, real_all, real_goals) = top10_rates(&real);
    let generated = WebshopWorld::new(generate::generate(500, 2025).unwrap(), 2025, None).unwrap();
    let (gen_rate, gen_n, gen_all, gen_goals) = top10_rates(&generated);
    println!(
        "BM25 top-10 rate: real 100-product file {real_rate:.3} of {real_n} goal products ({real_all:.3} of {real_goals} goals); \
         generated 500-product catalogue {gen_rate:.3} of {gen_n} products ({gen_all:.3} of {gen_goals} goals)"
    );
    assert!(real_all > 0.6 && gen_all > 0.5);
    assert!(real_rate > 0.6, "real {real_rate}");
    assert!(gen_rate > 0.5, "generated {gen_rate}");
    // The disk cache gives the same ranking as memory.
    let dir = tempfile::tempdir().unwrap();
    let on_disk = SearchIndex::cached(&real.catalogue, Some(dir.path())).unwrap();
    assert!(on_disk.location.is_some());
    let reopened = SearchIndex::cached(&real.catalogue, Some(dir.path())).unwrap();
    for q in [
        "console table solid wood",
        "shampoo sulfate free",
        "black dress",
    ] {
        assert_eq!(on_disk.search(q, 50), real.index.search(q, 50));
        assert_eq!(reopened.search(q, 50), real.index.search(q, 50));
    }
}

fn spec(prompt: PromptStyle, outcome: WebshopOutcome) -> WebshopSpec {
    WebshopSpec {
        products: None,
        attributes: None,
        catalogue_size: 100,
        max_turns: 15,
        history: 2,
        prompt,
        test_goals: 5,
        outcome,
    }
}

#[test]
fn pages_actions_and_observations_on_the_real_catalogue() {
    let world = Arc::new(WebshopWorld::new(real_catalogue(), 1, None).unwrap());
    let s = spec(PromptStyle::Verl, WebshopOutcome::Score);
    let mut env = WebshopEnv::with_world(world.clone(), &s);
    let goal_index = world
        .goals
        .iter()
        .position(|g| g.asin == "B08R3XSC65" || !g.goal_options.is_empty())
        .unwrap();
    env.reset_to_goal(goal_index);
    let goal = env.goal().clone();
    let instruction = goal.instruction_text.clone();
    assert_eq!(
        env.observation_text(),
        format!("WebShop [SEP] Instruction: [SEP] {instruction} [SEP] Search")
    );
    assert_eq!(
        env.admissible_actions(),
        vec!["search[<your query>]", "click[search]"]
    );
    assert_eq!(env.formatted_observation(), "'Search'");

    // Invalid actions change nothing.
    for bad in ["click[search]", "click[buy now]", "search[]", "jump"] {
        env.apply_action(bad);
        assert_eq!(
            env.session().page,
            oprl::env::webshop::pages::Page::Search,
            "{bad}"
        );
    }

    let target = world.catalogue.get(&goal.asin).unwrap().clone();
    env.apply_action(&format!("search[{}]", target.title.to_lowercase()));
    let obs = env.observation_text();
    let parts: Vec<&str> = obs.split(" [SEP] ").collect();
    assert_eq!(
        &parts[..3],
        &["Instruction:", instruction.as_str(), "Back to Search"]
    );
    assert!(
        parts[3].starts_with("Page 1 (Total results: "),
        "{}",
        parts[3]
    );
    assert_eq!(parts[4], "Next >");
    // Each result is asin, title, price; the target, searched by its own title, is first.
    assert_eq!(parts[5], target.asin);
    assert_eq!(parts[6], target.title);
    assert_eq!(parts[7], target.price_tag);
    let actions = env.admissible_actions();
    assert_eq!(&actions[..2], &["click[back to search]", "click[next >]"]);
    assert_eq!(actions[2], format!("click[{}]", target.asin.to_lowercase()));

    // Page 2 has both arrows; Prev goes back to page 1.
    env.apply_action("click[next >]");
    assert!(env
        .observation_text()
        .contains("[SEP] Page 2 (Total results: "));
    assert!(env.observation_text().contains("[SEP] < Prev [SEP] Next >"));
    env.apply_action("click[< prev]");
    assert!(env
        .observation_text()
        .contains("[SEP] Page 1 (Total results: "));

    // Item page.
    env.apply_action(&format!("click[{}]", target.asin.to_lowercase()));
    let mut expected = vec![
        "Instruction:".to_string(),
        instruction.clone(),
        "Back to Search".into(),
        "< Prev".into(),
    ];
    for (name, values) in &target.options {
        expected.push(name.clone());
        expected.extend(values.iter().cloned());
    }
    expected.extend([
        target.title.clone(),
        format!("Price: {}", target.price_tag),
        format!("Rating: {}", target.rating),
        "Description".into(),
        "Features".into(),
        "Reviews".into(),
        "Buy Now".into(),
    ]);
    assert_eq!(env.observation_text(), expected.join(" [SEP] "));
    let mut want_actions: Vec<String> = [
        "back to search",
        "< prev",
        "description",
        "features",
        "reviews",
        "buy now",
    ]
    .iter()
    .map(|a| format!("click[{a}]"))
    .collect();
    for values in target.options.values() {
        for v in values {
            if !want_actions.contains(&format!("click[{v}]")) {
                want_actions.push(format!("click[{v}]"));
            }
        }
    }
    assert_eq!(env.admissible_actions(), want_actions);

    // Sub-pages and back.
    env.apply_action("click[features]");
    assert_eq!(
        env.observation_text(),
        [
            vec![
                "Instruction:".to_string(),
                instruction.clone(),
                "Back to Search".into(),
                "< Prev".into()
            ],
            target
                .bullet_points
                .iter()
                .map(|b| b.trim().to_string())
                .filter(|b| !b.is_empty())
                .collect()
        ]
        .concat()
        .join(" [SEP] ")
    );
    assert_eq!(
        env.admissible_actions(),
        vec!["click[back to search]", "click[< prev]"]
    );
    env.apply_action("click[< prev]");
    assert_eq!(env.observation_text(), expected.join(" [SEP] "));

    // Choose the goal's options and buy: the goal's own product with its options scores 1
    // whenever the price is within the bound.
    let GoalOptions::Pairs(wanted) = &goal.goal_options else {
        unreachable!()
    };
    for value in wanted.values() {
        env.apply_action(&format!("click[{value}]"));
    }
    assert_eq!(&env.session().options, wanted);
    let (_, reward) = env.apply_action("click[buy now]");
    let info = env.reward_info().unwrap().clone();
    assert_eq!(reward, info.total);
    assert_eq!(
        info.r_price,
        Some(world.prices[&goal.asin] <= goal.price_upper)
    );
    assert_eq!(info.num_option_matches, wanted.len());
    assert_eq!(env.session().page, oprl::env::webshop::pages::Page::Done);
    assert!(env
        .observation_text()
        .starts_with("Thank you for shopping with us!"));

    // Back to Search resets the session.
    env.reset_to_goal(goal_index);
    env.apply_action("search[shoes]");
    env.apply_action("click[back to search]");
    assert_eq!(
        env.observation_text(),
        format!("WebShop [SEP] Instruction: [SEP] {instruction} [SEP] Search")
    );
}

#[test]
fn environment_interface_on_the_generated_catalogue() {
    let s = spec(PromptStyle::Verl, WebshopOutcome::Binary10);
    let mut env = WebshopEnv::new(&s).unwrap();
    let total_goals = env.world().goals.len();
    assert!(total_goals > 100);
    // Eval tasks are the first `test_goals` goals; train tasks the rest.
    env.reset(Task {
        split: Split::Eval,
        index: 7,
    })
    .unwrap();
    assert_eq!(env.goal(), &env.world().goals[7 % 5]);
    env.reset(Task {
        split: Split::Train,
        index: 0,
    })
    .unwrap();
    let goal = env.goal().clone();
    assert_eq!(goal, env.world().goals[5]);
    let first_prompt = env.prompt();
    assert!(first_prompt.contains(&format!("Your task is to: {}.", goal.instruction_text)));
    assert!(first_prompt.contains("Your current observation is: 'Search'."));

    // Malformed output: invalid, penalised, no move.
    let r = env.step("I am not sure").unwrap();
    assert!(!r.valid);
    assert!((r.reward + 0.1).abs() < 1e-12);
    assert!(r.observation.text.ends_with("[SEP] Search"));

    // Expert play: search the instruction, open the goal product, pick options, buy.
    let target = env.world().catalogue.get(&goal.asin).unwrap().clone();
    let say = |a: &str| format!("<think>plan</think><action>{a}</action>");
    let r = env
        .step(&say(&format!("search[{}]", target.title)))
        .unwrap();
    assert!(r.valid && !r.done);
    let key_results = env.state_key();
    assert!(env
        .prompt()
        .contains("Prior to this step, you have already taken 2 step(s)."));
    env.step(&say(&format!("click[{}]", target.asin.to_lowercase())))
        .unwrap();
    let GoalOptions::Pairs(wanted) = &goal.goal_options else {
        unreachable!()
    };
    for v in wanted.values() {
        env.step(&say(&format!("click[{v}]"))).unwrap();
    }
    assert_ne!(env.state_key(), key_results);
    let r = env.step(&say("click[Buy Now]")).unwrap();
    assert!(r.done);
    let outcome = env.outcome();
    let price_ok = env.world().prices[&goal.asin] <= goal.price_upper;
    assert!(
        price_ok,
        "generated goals bound the price above the product's price"
    );
    assert!(outcome.won, "{:?}", env.reward_info());
    assert_eq!(outcome.score, 1.0);
    assert_eq!(r.reward, 10.0);
    assert!((outcome.env_return - 9.9).abs() < 1e-9);

    // The compact prompt.
    let mut compact = WebshopEnv::new(&spec(PromptStyle::Compact, WebshopOutcome::Score)).unwrap();
    compact
        .reset(Task {
            split: Split::Train,
            index: 0,
        })
        .unwrap();
    let p = compact.prompt();
    assert_eq!(
        p,
        format!("Goal: {}\nsearch[<query>]\n<action>", goal.instruction_text)
    );
    let r = compact
        .step(&format!("search[{}]</action>", target.title))
        .unwrap();
    assert!(r.valid);
    let p = compact.prompt();
    let target_line = format!(
        "click[{}] {} {}",
        target.asin.to_lowercase(),
        target
            .title
            .to_lowercase()
            .chars()
            .take(40)
            .collect::<String>()
            .trim_end(),
        target.price_tag
    );
    assert!(
        p.starts_with(&format!(
            "Goal: {}\n> search[{}]\nresults page 1 of ",
            goal.instruction_text,
            target.title.to_lowercase()
        )),
        "{p}"
    );
    assert!(p.contains(&format!("\n{target_line}\n")), "{p}");
    assert!(
        p.ends_with("\nclick[next >] click[back to search]\n<action>"),
        "{p}"
    );
    compact
        .step(&format!(
            "<action>click[{}]</action>",
            target.asin.to_lowercase()
        ))
        .unwrap();
    let (name, value) = wanted.iter().next().unwrap();
    compact.step(&format!("click[{value}]")).unwrap();
    let p = compact.prompt();
    assert!(p.contains(&format!("\n{name} (chosen: {value}): ")), "{p}");
    assert!(p.ends_with("click[buy now] click[description] click[features] click[reviews] click[< prev] click[back to search]\n<action>"));
    assert!(
        p.chars().count() < 700,
        "compact prompts stay short: {}",
        p.chars().count()
    );

    // The vocabulary covers every prompt character and every admissible action.
    for (style, env) in [(PromptStyle::Verl, &env), (PromptStyle::Compact, &compact)] {
        let vocab = oprl::env::webshop::vocabulary(&spec(style, WebshopOutcome::Score)).unwrap();
        let text = env.prompt() + &env.admissible_actions().concat();
        let missing: Vec<char> = text
            .chars()
            .filter(|c| !vocab.alphabet.contains(*c))
            .collect();
        assert!(missing.is_empty(), "{style:?}: {missing:?}");
        assert!(
            vocab.words.contains(&"click[".to_string())
                && vocab.words.contains(&"</action>".to_string())
        );
    }
}

#[test]
fn play_by_hand_from_a_script() {
    let s = spec(PromptStyle::Verl, WebshopOutcome::Score);
    let mut env = WebshopEnv::new(&s).unwrap();
    let goal = env.world().goals[3].clone();
    let target = env.world().catalogue.get(&goal.asin).unwrap().clone();
    let GoalOptions::Pairs(wanted) = &goal.goal_options else {
        unreachable!()
    };
    let mut script = vec![
        "click[search]".to_string(),
        target.title.to_lowercase(),
        format!("click[{}]", target.asin.to_lowercase()),
    ];
    script.extend(wanted.values().map(|v| format!("click[{v}]")));
    script.extend(["click[buy now]".to_string(), "q".to_string()]);
    let mut out = Vec::new();
    oprl::cli::env::webshop::play(&mut env, 3, script.join("\n").as_bytes(), &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with(&format!("── goal 3 ── {}", goal.instruction_text)));
    assert!(out.contains("(no effect: `click[search]` is not available here)"));
    assert!(out.contains("reward 1.0000"), "{out}");
}

/// Reference figures for training curves: a uniformly random policy over the admissible actions
/// (its searches type the instruction) and an oracle that knows the target, on the generated
/// catalogue with the recipe's 10 turns.
#[test]
fn random_and_oracle_policies_on_the_generated_catalogue() {
    use rand::{Rng, SeedableRng};
    let s = WebshopSpec {
        max_turns: 10,
        ..spec(PromptStyle::Compact, WebshopOutcome::Score)
    };
    let mut env = WebshopEnv::new(&s).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let episodes = 300u64;
    let (mut wins, mut score) = (0usize, 0.0);
    for task in 0..episodes {
        env.reset(Task {
            split: Split::Train,
            index: task,
        })
        .unwrap();
        let instruction = env.goal().instruction_text.clone();
        loop {
            let actions = env.admissible_actions();
            let pick = &actions[rng.random_range(0..actions.len())];
            let action = if pick.starts_with("search[") {
                format!("search[{instruction}]")
            } else {
                pick.clone()
            };
            if env
                .step(&format!("<action>{action}</action>"))
                .unwrap()
                .done
            {
                break;
            }
        }
        let outcome = env.outcome();
        wins += usize::from(outcome.won);
        score += outcome.score;
    }
    let (mut oracle_wins, mut oracle_score) = (0usize, 0.0);
    for task in 0..episodes {
        env.reset(Task {
            split: Split::Train,
            index: task,
        })
        .unwrap();
        let goal = env.goal().clone();
        env.apply_action(&format!("search[{}]", goal.instruction_text));
        // The oracle pages through the results until it sees the target.
        let asin = goal.asin.to_lowercase();
        for _ in 0..5 {
            if env.admissible_actions().contains(&format!("click[{asin}]")) {
                break;
            }
            env.apply_action("click[next >]");
        }
        env.apply_action(&format!("click[{asin}]"));
        if let GoalOptions::Pairs(wanted) = &goal.goal_options {
            for v in wanted.values() {
                env.apply_action(&format!("click[{v}]"));
            }
        }
        env.apply_action("click[buy now]");
        let outcome = env.outcome();
        oracle_wins += usize::from(outcome.won);
        oracle_score += outcome.score;
    }
    let n = episodes as f64;
    println!(
        "generated catalogue, {episodes} train goals, 10 turns: random policy success {:.3} mean score {:.3}; oracle success {:.3} mean score {:.3}",
        wins as f64 / n, score / n, oracle_wins as f64 / n, oracle_score / n
    );
    assert!(oracle_wins as f64 / n > 0.95);
    assert!((wins as f64 / n) < 0.2);
}

/// 240 random purchases over the real files scored by WebShop's own `get_reward` (see the
/// fixture's `source`), and 60 fuzzy-score pairs (long ones exercise difflib's autojunk).
#[test]
fn reward_matches_webshop_on_random_purchases() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/webshop_reward_random.json"
    );
    let data: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let catalogue = real_catalogue();
    let cases = data["cases"].as_array().unwrap();
    let (mut same_total, mut same_nouns) = (0usize, 0usize);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let inputs = &case["inputs"];
        let product = catalogue
            .get(inputs["purchased_asin"].as_str().unwrap())
            .unwrap();
        let goal = goal_from_value(&inputs["goal"]);
        let price = inputs["price"].as_f64().unwrap();
        let options: IndexMap<String, String> = inputs["options"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let inter = &case["intermediates"];
        let (p_nouns, d_nouns) = (
            strings(&inter["purchased_name_nouns"]),
            strings(&inter["desired_name_nouns"]),
        );
        let spacy_type = reward::type_reward_from_nouns(
            product.query == goal.query,
            reward::category_match(&product.product_category, &goal.product_category),
            &p_nouns,
            &d_nouns,
        );
        let expected = &case["outputs"];
        let with_spacy = reward::combine(spacy_type, product, &goal, price, &options);
        let total = expected["total_reward"].as_f64().unwrap();
        assert!(
            (with_spacy.total - total).abs() < 1e-6,
            "{name}: {} vs {total}",
            with_spacy.total
        );
        assert_eq!(
            with_spacy.r_type,
            expected["r_type"].as_f64().unwrap(),
            "{name}"
        );
        let ours = reward::get_reward(product, &goal, price, &options);
        same_total += usize::from((ours.total - total).abs() < 1e-6);
        same_nouns += usize::from(
            title_nouns(&product.name) == p_nouns && title_nouns(&goal.name) == d_nouns,
        );
    }
    println!(
        "random purchases: totals exact with spaCy's nouns {}/{}; with the heuristic tagger {same_total}/{} totals equal, {same_nouns}/{} noun-list pairs identical",
        cases.len(), cases.len(), cases.len(), cases.len()
    );
    assert!(same_total as f64 / cases.len() as f64 > 0.85);
    for pair in data["fuzz_pairs"].as_array().unwrap() {
        let (a, b) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        assert_eq!(
            u64::from(token_set_ratio(a, b)),
            pair[2].as_u64().unwrap(),
            "token_set_ratio({a:?}, {b:?})"
        );
        assert_eq!(
            u64::from(oprl::env::webshop::fuzz::ratio(a, b)),
            pair[3].as_u64().unwrap(),
            "ratio({a:?}, {b:?})"
        );
    }
}

/// Page texts rendered by WebShop's own templates and `convert_html_to_text(simple=True)`.
#[test]
fn observations_match_webshop_templates() {
    use oprl::env::webshop::pages::{Page, Session, SubPage};
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/webshop_pages.json");
    let data: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let catalogue = real_catalogue();
    let instruction = data["instruction"].as_str().unwrap();
    let position = |asin: &str| {
        catalogue
            .products
            .iter()
            .position(|p| p.asin == asin)
            .unwrap()
    };
    let results: Vec<usize> = strings(&data["results_asins"])
        .iter()
        .map(|a| position(a))
        .collect();
    let mut session = Session::new(instruction, false);
    let check = |session: &Session, key: &str| {
        assert_eq!(
            session.observation(&catalogue, None),
            data[key].as_str().unwrap(),
            "{key}"
        );
    };
    check(&session, "search");
    session.page = Page::Results;
    session.results = results[..3].to_vec();
    check(&session, "results_p1");
    // Page 2 of 13 results shows the 11th to 13th.
    session.results = [vec![results[0]; 10], results[3..6].to_vec()].concat();
    session.results_page = 2;
    check(&session, "results_p2");
    let item = position(data["asin"].as_str().unwrap());
    session.product = Some(item);
    session.page = Page::Item;
    check(&session, "item");
    session.page = Page::Sub(SubPage::Description);
    check(&session, "description");
    session.page = Page::Sub(SubPage::Features);
    check(&session, "features");
}

/// The answers of an expert for `env`'s current goal in the compact style: search the title,
/// open the product, pick the goal's options, buy; with one malformed answer first.
fn expert_answers(env: &WebshopEnv) -> Vec<String> {
    let goal = env.goal().clone();
    let target = env.world().catalogue.get(&goal.asin).unwrap().clone();
    let mut answers = vec![
        String::new(),
        format!("search[{}]</action>", target.title),
        format!("click[{}]</action>", target.asin.to_lowercase()),
    ];
    if let GoalOptions::Pairs(wanted) = &goal.goal_options {
        answers.extend(wanted.values().map(|v| format!("click[{v}]</action>")));
    }
    answers.push("click[buy now]</action>".to_string());
    answers
}

/// `oprl env serve webshop` over the protocol gives what the in-process environment gives:
/// observations, prompts, rewards, state keys and the final score, with `--set` compiled.
#[test]
fn external_env_drives_oprl_env_serve_webshop_like_the_in_process_env() {
    use oprl::env::protocol::ExternalEnv;
    use oprl::graph::ExternalSpec;
    let command = format!(
        "\"{}\" env serve webshop --set catalogue_size=100 --set max_turns=15 --set test_goals=5 \
         --set prompt=compact",
        env!("CARGO_BIN_EXE_oprl")
    );
    let mut remote = ExternalEnv::spawn(ExternalSpec {
        command,
        timeout_s: 120.0,
        max_turns: 15,
        history: 2,
    })
    .unwrap();
    let mut local = WebshopEnv::new(&spec(PromptStyle::Compact, WebshopOutcome::Score)).unwrap();
    for task in [
        Task {
            split: Split::Train,
            index: 4,
        },
        Task {
            split: Split::Eval,
            index: 2,
        },
    ] {
        assert_eq!(remote.reset(task).unwrap(), local.reset(task).unwrap());
        assert_eq!(remote.prompt(), local.prompt());
        assert_eq!(remote.state_key(), local.state_key());
        for answer in expert_answers(&local) {
            let (r, l) = (remote.step(&answer).unwrap(), local.step(&answer).unwrap());
            assert_eq!(
                (r.reward, r.done, r.valid, r.won),
                (l.reward, l.done, l.valid, l.won),
                "{answer}"
            );
            assert_eq!(r.observation, l.observation);
            assert_eq!(remote.prompt(), local.prompt());
            assert_eq!(remote.state_key(), local.state_key());
        }
        let outcome = local.outcome();
        assert!(outcome.won, "the expert buys the goal");
        // 1.0 for the purchase, -0.1 for the malformed first answer.
        assert!((outcome.env_return - 0.9).abs() < 1e-12);
        assert_eq!(remote.outcome(), outcome);
    }
}

/// The protocol's own fields for WebShop, served in process: the reset names the actions and the
/// goal, a purchase reports WebShop's score, and a finished episode refuses more steps.
#[test]
fn protocol_serves_webshop_fields() {
    use oprl::env::protocol::serve;
    let s = spec(PromptStyle::Verl, WebshopOutcome::Binary10);
    let mut env = WebshopEnv::new(&s).unwrap();
    let mut reference = WebshopEnv::new(&s).unwrap();
    // A goal with options, so that buying without choosing any scores below 1.
    let index = (0..100u64)
        .find(|&index| {
            reference
                .reset(Task {
                    split: Split::Train,
                    index,
                })
                .unwrap();
            !reference.goal().goal_options.is_empty()
        })
        .unwrap();
    let goal = reference.goal().clone();
    let target = reference.world().catalogue.get(&goal.asin).unwrap().clone();
    let step = |a: &str| {
        serde_json::json!({"op": "step", "action": format!("<think>t</think><action>{a}</action>")})
            .to_string()
    };
    let requests = [
        format!(r#"{{"op":"reset","seed":{index}}}"#),
        step(&format!("search[{}]", target.title)),
        step(&format!("click[{}]", target.asin.to_lowercase())),
        step("click[buy now]"),
        step("click[buy now]"),
        r#"{"op":"close"}"#.to_string(),
    ];
    let mut out = Vec::new();
    serve(&mut env, requests.join("\n").as_bytes(), &mut out).unwrap();
    let replies: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(replies.len(), 6);
    assert_eq!(replies[0]["info"]["goal_asin"], goal.asin.as_str());
    assert_eq!(
        replies[0]["info"]["available_actions"],
        serde_json::json!(["search[<your query>]", "click[search]"])
    );
    assert_eq!(
        replies[0]["observation"]["prompt"],
        reference.prompt().as_str()
    );
    assert_eq!(replies[1]["info"]["page"], "Results");
    assert_eq!(replies[2]["info"]["page"], "Item");
    // Bought without the goal's options: a partial score, no success, 0 under `binary10`.
    let score = replies[3]["info"]["score"].as_f64().unwrap();
    assert!(score > 0.0 && score < 1.0, "{score}");
    assert_eq!(replies[3]["done"], true);
    assert_eq!(replies[3]["reward"].as_f64(), Some(0.0));
    assert_eq!(replies[3]["info"]["won"], false);
    assert!(replies[4]["error"].as_str().unwrap().contains("ended"));
    assert_eq!(replies[5]["closed"], true);
}

/// `--set` errors on the command line are the compiler's diagnostics, with its codes.
#[test]
fn env_commands_report_settings_with_compiler_diagnostics() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_oprl"))
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&["env", "serve", "webshop", "--set", "colour=red"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("E0301"), "{stderr}");
    assert!(stderr.contains("colour"), "{stderr}");
    let out = run(&["env", "play", "webshop", "--set", "max_turns=0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("E0401"));
    let out = run(&["env", "serve", "chess"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("available: sokoban, webshop"));
}

/// `oprl env play webshop --seed N` plays train task N's goal from a script on stdin, shows the
/// admissible actions and ends with the reward.
#[test]
fn env_play_webshop_from_stdin() {
    use std::io::Write;
    let mut env = WebshopEnv::new(&spec(PromptStyle::Compact, WebshopOutcome::Score)).unwrap();
    env.reset(Task {
        split: Split::Train,
        index: 6,
    })
    .unwrap();
    let goal = env.goal().clone();
    let target = env.world().catalogue.get(&goal.asin).unwrap().clone();
    let mut script = vec![
        format!("search[{}]", target.title.to_lowercase()),
        format!("click[{}]", target.asin.to_lowercase()),
    ];
    if let GoalOptions::Pairs(wanted) = &goal.goal_options {
        script.extend(wanted.values().map(|v| format!("click[{v}]")));
    }
    script.extend(["click[buy now]".to_string(), "q".to_string()]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_oprl"))
        .args([
            "env",
            "play",
            "webshop",
            "--seed",
            "6",
            "--set",
            "catalogue_size=100",
            "--set",
            "test_goals=5",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.join("\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!(
            "── goal {} ── {}",
            env.goal_index(),
            goal.instruction_text
        )),
        "{text}"
    );
    assert!(
        text.contains("actions:\n   1. search[<your query>]"),
        "{text}"
    );
    assert!(text.contains("reward 1.0000"), "{text}");
}

/// With the compact prompt a single token is a whole action: every button, ASIN and option label
/// on the pages an expert visits is one token of the policy's vocabulary and is read as its
/// click, and the goal's product type is one token that searches for it.
#[test]
fn compact_actions_are_single_tokens() {
    use oprl::model::Tokenizer;
    let s = WebshopSpec {
        catalogue_size: 16,
        test_goals: 4,
        ..spec(PromptStyle::Compact, WebshopOutcome::Score)
    };
    let vocab = oprl::env::webshop::vocabulary(&s).unwrap();
    let tokenizer = Tokenizer::chars_with_words(&vocab.alphabet, &vocab.words);
    let mut env = WebshopEnv::new(&s).unwrap();
    // A query that finds nothing moves to an empty results page, and counts as invalid.
    env.reset(Task {
        split: Split::Train,
        index: 0,
    })
    .unwrap();
    let r = env.step("(").unwrap();
    assert!(!r.valid && (r.reward + 0.1).abs() < 1e-12);
    assert_eq!(r.info["page"], "Results");
    let mut pages_checked = 0;
    for index in 0..10 {
        env.reset(Task {
            split: Split::Train,
            index,
        })
        .unwrap();
        let goal = env.goal().clone();
        assert_eq!(tokenizer.encode(&goal.query).len(), 1, "{}", goal.query);
        let mut answers = vec![goal.query.clone()];
        answers.push(goal.asin.to_lowercase());
        if let GoalOptions::Pairs(wanted) = &goal.goal_options {
            answers.extend(wanted.values().cloned());
        }
        answers.push("buy now".to_string());
        for answer in answers {
            for action in env.admissible_actions() {
                let Some(label) = action
                    .strip_prefix("click[")
                    .and_then(|a| a.strip_suffix(']'))
                else {
                    continue;
                };
                if label == "search" {
                    continue;
                }
                assert_eq!(tokenizer.encode(label).len(), 1, "{label}");
                pages_checked += 1;
            }
            let r = env.step(&answer).unwrap();
            assert!(r.valid, "{answer}: {}", r.info);
        }
        // One search for the type finds the product on the first page (16 products).
        assert!(env.outcome().score > 0.0);
    }
    assert!(pages_checked > 50);
}

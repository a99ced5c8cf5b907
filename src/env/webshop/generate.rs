//! The catalogue oprl generates itself (so WebShop recipes run offline): deterministic per seed,
//! with categories, product types, brands, attributes, options, prices and WebShop-style
//! synthetic instructions ("Find me <attributes> <query> ...").

use super::catalogue::{price_tag, AttributeEntry, Catalogue, CatalogueError, Product, Review};
use indexmap::IndexMap;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A product family: where it sits, what it is called, which attributes and options it has.
struct Family {
    category: &'static str,
    breadcrumb: &'static str,
    /// (query, title noun phrase)
    types: &'static [(&'static str, &'static str)],
    attributes: &'static [&'static str],
    options: &'static [(&'static str, &'static [&'static str])],
    price: (f64, f64),
}

const COLORS: &[&str] = &[
    "black",
    "white",
    "navy blue",
    "red",
    "grey",
    "green",
    "pink",
    "beige",
];
const CLOTHING_SIZES: &[&str] = &["small", "medium", "large", "x-large", "xx-large"];

const FAMILIES: &[Family] = &[
    Family {
        category: "fashion",
        breadcrumb: "Clothing, Shoes & Jewelry › Men › Shoes › Athletic",
        types: &[
            ("men's running shoes", "Running Shoes for Men"),
            ("women's walking shoes", "Walking Shoes for Women"),
            ("hiking boots", "Hiking Boots"),
        ],
        attributes: &[
            "lightweight",
            "non slip",
            "rubber sole",
            "breathable mesh",
            "arch support",
            "memory foam",
            "waterproof",
        ],
        options: &[
            ("color", COLORS),
            ("size", &["7", "8", "9", "10", "11", "12"]),
        ],
        price: (25.0, 120.0),
    },
    Family {
        category: "fashion",
        breadcrumb: "Clothing, Shoes & Jewelry › Women › Clothing › Tops, Tees & Blouses",
        types: &[
            ("women's t-shirts", "T-Shirt for Women"),
            ("men's polo shirts", "Polo Shirt for Men"),
            ("hoodies", "Pullover Hoodie"),
        ],
        attributes: &[
            "machine wash",
            "cotton spandex",
            "short sleeve",
            "long sleeve",
            "relaxed fit",
            "quick dry",
            "button closure",
        ],
        options: &[("color", COLORS), ("size", CLOTHING_SIZES)],
        price: (9.0, 45.0),
    },
    Family {
        category: "beauty",
        breadcrumb: "Beauty & Personal Care › Hair Care › Shampoo & Conditioner",
        types: &[
            ("shampoo", "Shampoo"),
            ("hair conditioner", "Hair Conditioner"),
            ("hair oil", "Hair Oil"),
        ],
        attributes: &[
            "sulfate free",
            "paraben free",
            "cruelty free",
            "natural ingredients",
            "dry hair",
            "hair growth",
            "tea tree",
        ],
        options: &[
            ("size", &["8 fl oz", "16 fl oz", "32 fl oz"]),
            ("scent", &["lavender", "coconut", "mint", "unscented"]),
        ],
        price: (6.0, 40.0),
    },
    Family {
        category: "beauty",
        breadcrumb: "Beauty & Personal Care › Skin Care › Face › Creams & Moisturizers",
        types: &[
            ("face moisturizer", "Face Moisturizer"),
            ("eye cream", "Eye Cream"),
            ("lip balm", "Lip Balm"),
        ],
        attributes: &[
            "sensitive skin",
            "long lasting",
            "hyaluronic acid",
            "fragrance free",
            "dermatologist tested",
            "easy apply",
        ],
        options: &[("size", &["0.5 oz", "1.7 oz", "3.4 oz"])],
        price: (8.0, 60.0),
    },
    Family {
        category: "garden",
        breadcrumb: "Home & Kitchen › Furniture › Living Room Furniture › Tables",
        types: &[
            ("console tables", "Console Table"),
            ("coffee tables", "Coffee Table"),
            ("side tables", "Side Table"),
        ],
        attributes: &[
            "solid wood",
            "easy assemble",
            "storage space",
            "metal frame",
            "living room",
            "rustic finish",
        ],
        options: &[("color", &["walnut", "black", "white", "oak"])],
        price: (45.0, 380.0),
    },
    Family {
        category: "garden",
        breadcrumb: "Home & Kitchen › Kitchen & Dining › Storage & Organization",
        types: &[
            ("water bottles", "Water Bottle"),
            ("food storage containers", "Food Storage Containers"),
            ("travel mugs", "Travel Mug"),
        ],
        attributes: &[
            "bpa free",
            "leak proof",
            "dishwasher safe",
            "stainless steel",
            "easy clean",
            "keeps drinks cold",
        ],
        options: &[("color", COLORS), ("size", &["12 oz", "20 oz", "32 oz"])],
        price: (7.0, 35.0),
    },
    Family {
        category: "grocery",
        breadcrumb: "Grocery & Gourmet Food › Snacks & Sweets › Snack Bars",
        types: &[
            ("protein bars", "Protein Bars"),
            ("granola bars", "Granola Bars"),
            ("trail mix", "Trail Mix"),
        ],
        attributes: &[
            "gluten free",
            "low sugar",
            "high protein",
            "non gmo",
            "keto friendly",
            "individually wrapped",
        ],
        options: &[
            (
                "flavor name",
                &["chocolate", "peanut butter", "vanilla", "berry"],
            ),
            ("size", &["pack of 6", "pack of 12", "pack of 24"]),
        ],
        price: (8.0, 45.0),
    },
    Family {
        category: "electronics",
        breadcrumb: "Electronics › Headphones, Earbuds & Accessories › Headphones",
        types: &[
            ("wireless earbuds", "Wireless Earbuds"),
            ("bluetooth headphones", "Bluetooth Headphones"),
            ("usb c cable", "USB C Cable"),
        ],
        attributes: &[
            "noise cancelling",
            "fast charging",
            "long battery life",
            "water resistant",
            "high definition",
            "easy carry",
        ],
        options: &[("color", &["black", "white", "blue"])],
        price: (12.0, 150.0),
    },
];

const BRAND_SYLLABLES: &[&str] = &[
    "lu", "mo", "ra", "ve", "ki", "zo", "ta", "ne", "sol", "bri", "cor", "fen", "dra", "pix", "mar",
];

fn title_case(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn brand(rng: &mut ChaCha8Rng) -> String {
    let n = rng.random_range(2..=3);
    let word: String = (0..n)
        .map(|_| *BRAND_SYLLABLES.choose(rng).expect("non-empty"))
        .collect();
    title_case(&word)
}

fn asin(rng: &mut ChaCha8Rng, taken: &mut std::collections::HashSet<String>) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    loop {
        let tail: String = (0..8)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        let candidate = format!("B0{tail}");
        if taken.insert(candidate.clone()) {
            return candidate;
        }
    }
}

/// Rounds to cents the way shop prices look (x.99 or x.49 endings).
fn shop_price(rng: &mut ChaCha8Rng, low: f64, high: f64) -> f64 {
    let whole = rng.random_range(low..high).floor();
    let cents = *[0.99, 0.49, 0.95].choose(rng).expect("non-empty");
    ((whole + cents) * 100.0).round() / 100.0
}

/// Generates `size` products (all with instructions) from `seed`.
pub fn generate(size: usize, seed: u64) -> Result<Catalogue, CatalogueError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut taken = std::collections::HashSet::new();
    let mut products = Vec::with_capacity(size);
    for _ in 0..size {
        let family = FAMILIES.choose(&mut rng).expect("non-empty");
        let &(query, noun_phrase) = family.types.choose(&mut rng).expect("non-empty");
        let brand = brand(&mut rng);
        let n_attributes = rng.random_range(3..=4).min(family.attributes.len());
        let attributes: Vec<String> = family
            .attributes
            .choose_multiple(&mut rng, n_attributes)
            .map(|a| a.to_string())
            .collect();
        // The title shows two attributes; the others appear in bullets and description only.
        let title = format!(
            "{brand} {} {} {noun_phrase}",
            title_case(&attributes[0]),
            title_case(&attributes[1]),
        );
        let mut options = IndexMap::new();
        for (name, values) in family.options {
            if rng.random_bool(0.75) {
                let k = rng.random_range(2..=values.len().min(4));
                let mut chosen: Vec<String> = values
                    .choose_multiple(&mut rng, k)
                    .map(|v| v.to_string())
                    .collect();
                // Keep the family's listing order, as shops do.
                chosen.sort_by_key(|v| values.iter().position(|x| x == v));
                options.insert(name.to_string(), chosen);
            }
        }
        let pricing = if rng.random_bool(0.2) {
            let low = shop_price(&mut rng, family.price.0, family.price.1);
            vec![low, ((low * 1.3) * 100.0).round() / 100.0]
        } else {
            vec![shop_price(&mut rng, family.price.0, family.price.1)]
        };
        let bullet_points: Vec<String> = attributes
            .iter()
            .map(|a| format!("{}: designed for everyday use", title_case(a)))
            .collect();
        let description = format!(
            "The {brand} {} is {} and {}. Thoughtfully made for daily use.",
            noun_phrase.to_lowercase(),
            attributes[2],
            attributes.last().expect("at least three"),
        );
        let n_instruction = rng.random_range(1..=2.min(attributes.len()));
        let mut instruction_attributes: Vec<String> = attributes
            .choose_multiple(&mut rng, n_instruction)
            .cloned()
            .collect();
        instruction_attributes.shuffle(&mut rng);
        let instruction = format!("Find me {} {query}", instruction_attributes.join(", "));
        let rating = format!("{:.1}", rng.random_range(3.0..5.0));
        let reviews = vec![Review {
            title: format!("{} {}", title_case(&attributes[0]), "as described"),
            score: rng.random_range(3..=5),
            body: format!("Good {}.", noun_phrase.to_lowercase()),
        }];
        let asin = asin(&mut rng, &mut taken);
        let entry = AttributeEntry {
            attributes: Some(attributes.clone()),
            instruction: Some(instruction),
            instruction_attributes: Some(instruction_attributes),
        };
        products.push(Product {
            asin,
            name: title.clone(),
            title,
            description,
            bullet_points,
            category: family.category.to_string(),
            query: query.to_string(),
            product_category: family.breadcrumb.to_string(),
            price_tag: price_tag(&pricing),
            pricing,
            rating,
            reviews,
            options,
            attributes,
            instruction_text: entry.instruction,
            instruction_attributes: entry.instruction_attributes,
            main_image: String::new(),
        });
    }
    if products.is_empty() {
        return Err(CatalogueError::Empty);
    }
    Ok(Catalogue { products })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_well_formed() {
        let a = generate(60, 7).unwrap();
        let b = generate(60, 7).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, generate(60, 8).unwrap());
        let asins: std::collections::HashSet<_> = a.products.iter().map(|p| &p.asin).collect();
        assert_eq!(asins.len(), 60);
        for p in &a.products {
            assert_eq!(p.asin.len(), 10);
            let instruction = p.instruction_text.as_ref().unwrap();
            assert!(instruction.starts_with("Find me "));
            for attribute in p.instruction_attributes.as_ref().unwrap() {
                assert!(p.attributes.contains(attribute));
                assert!(instruction.contains(attribute.as_str()));
            }
            assert!(p.options.values().all(|v| v.len() >= 2));
            assert!(p.pricing[0] > 0.0);
        }
    }
}

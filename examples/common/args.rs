//! Command-line arguments of the benchmark tools (`--name value`), shared by the examples with
//! `#[path = "common/args.rs"] mod args;`. Tools, not service code: a bad value fails loudly.

/// The value after `name`, if it is there.
pub fn text(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The number after `name`, or `default`.
#[allow(dead_code)] // not every tool takes numbers
pub fn number<T: std::str::FromStr>(name: &str, default: T) -> T {
    text(name).map_or(default, |v| {
        v.parse().unwrap_or_else(|_| panic!("{name}: not a number: {v}"))
    })
}

//! The search networks have exactly the reference's weights, names and shapes.

mod common;

use common::gpu;
use darts_minus::nn::count_parameters;
use darts_minus::search::darts_net::{DartsConfig, DartsNetwork};
use darts_minus::search::nb201_net::{Nb201Config, Nb201Network};
use rand::SeedableRng;

fn rng() -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(0)
}

#[test]
fn darts_minus_search_network_has_1_971_578_weights() {
    let g = gpu();
    let net = DartsNetwork::new(&g, &mut rng(), DartsConfig::default()).unwrap();
    assert_eq!(count_parameters(&net), 1_971_578);
}

#[test]
fn plain_darts_search_network_has_1_930_618_weights() {
    let g = gpu();
    let cfg = DartsConfig {
        aux: false,
        ..DartsConfig::default()
    };
    let net = DartsNetwork::new(&g, &mut rng(), cfg).unwrap();
    assert_eq!(count_parameters(&net), 1_930_618);
}

#[test]
fn nb201_search_network_has_1_692_826_weights() {
    let g = gpu();
    let net = Nb201Network::new(&g, &mut rng(), Nb201Config::default()).unwrap();
    assert_eq!(count_parameters(&net), 1_692_826);
}

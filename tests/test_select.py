"""Which model ships (`archft.export.choose_model`) and the model card that says so."""

from archft.export import choose_model
from archft.export.card import render_card


def _metrics(val_correct, madds, params=3_000_000):
    return {"val_accuracy": sum(val_correct) / len(val_correct), "val_correct": val_correct,
            "madds": madds, "params": params}


def test_a_clear_win_on_validation_ships_the_winner_whatever_it_costs():
    good, bad = [1] * 90 + [0] * 10, [1] * 60 + [0] * 40
    s = choose_model(_metrics(bad, 100), _metrics(good, 200))
    assert s["chosen"] == "vanilla" and not s["tie"] and s["val_ci95"][1] < 0
    assert "vanilla is better on validation" in s["reason"]
    s = choose_model(_metrics(good, 300), _metrics(bad, 200))
    assert s["chosen"] == "two-stage" and s["val_ci95"][0] > 0


def test_a_tie_within_the_noise_goes_to_the_cheaper():
    a = [1] * 80 + [0] * 20
    b = [1] * 78 + [0] * 2 + [1] * 2 + [0] * 18  # the same accuracy, other images
    worse = [0, 0] + a[2:]  # two fewer right: within the noise of 100 images
    cheap = choose_model(_metrics(worse, 90), _metrics(a, 100))
    assert cheap["tie"] and cheap["chosen"] == "two-stage" and cheap["val_difference"] < 0
    assert "two-stage is the cheaper" in cheap["reason"]
    dear = choose_model(_metrics(b, 110), _metrics(a, 100))
    assert dear["tie"] and dear["chosen"] == "vanilla" and "vanilla is the cheaper" in dear[
        "reason"]
    equal = choose_model(_metrics(a, 100), _metrics(a, 100))
    assert equal["chosen"] == "vanilla" and "equal cost" in equal["reason"]


def test_metrics_without_per_image_results_compare_the_accuracies():
    s = choose_model({"val_accuracy": 0.8, "madds": 1}, {"val_accuracy": 0.81, "madds": 2})
    assert s["chosen"] == "vanilla" and s["val_ci95"] is None


def test_the_card_names_what_shipped_and_marks_changed_decisions():
    e = {"shipped": "two-stage", "shipped_reason": "a tie; two-stage is the cheaper",
         "onnx_test_accuracy": 0.9, "madds": 1e8, "params": 3e6, "onnxruntime_batch1_ms": 1.2,
         "two_stage_val_accuracy": 0.9, "two_stage_test_accuracy": 0.9, "two_stage_madds": 1e8,
         "two_stage_scope_madds": 2e7, "two_stage_params": 3e6, "vanilla_val_accuracy": 0.9,
         "vanilla_test_accuracy": 0.91, "vanilla_madds": 1.2e8, "vanilla_scope_madds": 4e7,
         "vanilla_params": 3.3e6, "gain_over_vanilla": -0.01, "gain_over_vanilla_ci95": [-0.03,
         0.01], "gain_over_vanilla_p": 0.5, "test_images": 600, "dataset": "textures",
         "dataset_fingerprint": "abc123", "dvc_hash": "d41d8", "base": "efficientnet_lite0",
         "scope": "medium", "strategy": "reinforce", "num_subnets": 7776}
    arch = {"decisions": [{"layer": "blocks.11", "candidates": ["k3_e3", "k5_e6"],
                           "choice": "k3_e3"},
                          {"layer": "blocks.12", "candidates": ["k3_e3", "k5_e6"],
                           "choice": "k5_e6"}]}
    card = render_card(e, arch, {"blocks.11": "k5_e6", "blocks.12": "k5_e6"},
                       {"pareto": b"\x89PNG"})
    assert "Shipped: two-stage" in card and "two-stage <b>(shipped)</b>" in card
    assert "<b>k3_e3</b>" in card and "<b>k5_e6</b>" not in card  # only the changed one
    assert "0.83x vanilla's, 0.50x in the scope" in card
    assert "abc123" in card and "d41d8" in card and "data:image/png;base64," in card

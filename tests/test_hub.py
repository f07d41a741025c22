"""hf_alm.hub: staging, model cards, one-commit upload with the Hub's network layer stubbed, clear offline errors.

References: the card metadata is parsed back with huggingface_hub's own parsers (``ModelCard(text).data``,
``metadata_load``) and compared with ``eval_results.json``; the staged folder is loaded by transformers'
remote-code loader in a fresh process where ``hf_alm`` cannot be imported, and its outputs are compared with the
in-process model.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import textwrap
import threading
from pathlib import Path

import httpx2
import pytest
import torch
from huggingface_hub import HfApi, ModelCard, metadata_load
from huggingface_hub.utils import _http as hf_http

from hf_alm import hub

BLOCK_HF_ALM = textwrap.dedent("""
    import importlib.abc, sys
    class _BlockHfAlm(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "hf_alm" or name.startswith("hf_alm."):
                raise ImportError(f"hf_alm is deliberately unavailable in this process ({name})")
            return None
    sys.meta_path.insert(0, _BlockHfAlm())
    try:
        import hf_alm  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("hf_alm is importable: the isolation failed")
""")

EVAL_RESULTS = {
    "stage_a": {"order_accuracy": 0.5, "relation_accuracy": 0.4, "zero_shot_accuracy": 0.3},
    "stage_b": {
        "order_accuracy": 0.8125,
        "relation_accuracy": 0.6875,
        "zero_shot_accuracy": 0.59375,
        "text_to_audio_R@1": 0.25,
        "audio_to_text_R@10": 0.875,
        "loss": 1.234,
    },
    "dataset": "synthetic",
}


# ------------------------------------------------------------------------------------------------ fixtures
def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_classifier_dir(tmp_path_factory):
    """A recipe-like output folder: tiny edge classifier + feature extractor + eval_results.json + junk to skip."""
    from hf_alm.modeling.tiny_edge_transformer import (
        TinyEdgeTransformerConfig,
        TinyEdgeTransformerFeatureExtractor,
        TinyEdgeTransformerForAudioClassification,
    )

    torch.manual_seed(0)
    labels = ["dog_bark", "rain", "siren"]
    config = TinyEdgeTransformerConfig.from_preset(
        "tiny", id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    model = TinyEdgeTransformerForAudioClassification(config).eval()
    out = tmp_path_factory.mktemp("run") / "tiny-edge-run"
    model.save_pretrained(out)
    TinyEdgeTransformerFeatureExtractor().save_pretrained(out)
    (out / "eval_results.json").write_text(json.dumps({"train": {"accuracy": 0.5}, "final": {"accuracy": 0.8125}}))
    (out / "checkpoints" / "train" / "epoch_0").mkdir(parents=True)
    (out / "checkpoints" / "train" / "epoch_0" / "optimizer.bin").write_bytes(b"\0" * 64)
    return out


class HubStub:
    """Stub for the Hub: a mock HTTP transport for the token check and recorded create_repo / upload_folder."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self.uploaded: dict[str, bytes] = {}

    def create_repo(self, api, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, api, repo_id, **kwargs):
        self.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, api, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        folder = Path(kwargs["folder_path"])
        self.uploaded = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

        class Info:
            commit_url = f"https://huggingface.co/{kwargs['repo_id']}/commit/abc123"
            pr_url = (f"https://huggingface.co/{kwargs['repo_id']}/discussions/1" if kwargs.get("create_pr")
                      else None)

        return Info()


@pytest.fixture
def mock_transport():
    """Install an httpx2 MockTransport as huggingface_hub's HTTP session; yields a setter for the handler."""
    state = {"handler": lambda request: httpx2.Response(200, json={"name": "tester"})}
    hf_http.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(lambda r: state["handler"](r))))
    yield state
    hf_http.set_client_factory(hf_http.default_client_factory)


@pytest.fixture
def hub_stub(monkeypatch, mock_transport):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    stub = HubStub()
    monkeypatch.setattr(HfApi, "create_repo", lambda api, repo_id, **kw: stub.create_repo(api, repo_id, **kw))
    monkeypatch.setattr(HfApi, "create_branch", lambda api, repo_id, **kw: stub.create_branch(api, repo_id, **kw))
    monkeypatch.setattr(HfApi, "upload_folder", lambda api, **kw: stub.upload_folder(api, **kw))
    return stub


# ------------------------------------------------------------------------------------------- eval results
def test_load_eval_results_takes_final_stage_and_keeps_metadata():
    flat = hub.load_eval_results(EVAL_RESULTS)
    assert flat["order_accuracy"] == 0.8125 and flat["stage"] == "stage_b" and flat["dataset"] == "synthetic"
    assert hub.load_eval_results({"accuracy": 0.9, "epoch": 3}) == {"accuracy": 0.9, "epoch": 3}
    assert hub.load_eval_results({"train": {"accuracy": 0.1}, "final": {"accuracy": 0.7}, "eval": {"accuracy": 0.2}})[
        "accuracy"] == 0.7
    nested = hub.load_eval_results({"retrieval": {"text_to_audio_R@5": 0.5}, "accuracy": 0.25})
    assert nested == {"retrieval/text_to_audio_R@5": 0.5, "accuracy": 0.25}


def test_load_eval_results_recipe_layouts():
    """The layouts the recipes write: TeminAL (meta groups first, stages last), ONE-PEACE ("final" names the stage,
    numeric metadata at the top), tiny edge (top-level means with _stdev, a training-args group)."""
    teminal = {"dataset": "esc10:/data/esc10", "summary": {"order_accuracy_gain_points": 12.5},
               "timing_s": {"total_s": 3.0}, "teminal_config": {"alpha_same": 1.0, "accuracy_weight": 2.0},
               "base": {"order_accuracy": 0.5}, "teminal_a": {"order_accuracy": 0.6},
               "teminal_b": {"order_accuracy": 0.75, "order_num_items": 40, "text_to_audio_R@5": 0.5}}
    flat = hub.load_eval_results(teminal)
    assert flat["stage"] == "teminal_b" and flat["order_accuracy"] == 0.75 and flat["dataset"] == "esc10:/data/esc10"
    results = hub.build_eval_results(flat, family_task="zero-shot-audio-classification")
    assert {(r.metric_name, r.metric_value) for r in results} == {("ZSTE order accuracy", 0.75), ("R@5", 0.5)}
    assert {(r.dataset_type, r.dataset_name) for r in results} == {("esc10", "ESC-10")}  # no local path in the card

    one_peace = {"dataset": "synthetic", "num_parameters": 12345, "final": "stage2",
                 "stage1": {"audio_to_text_R@1": 0.1}, "stage2": {"audio_to_text_R@1": 0.3, "image_to_text_R@1": 0.2,
                                                                  "zste_zero_shot_accuracy": 0.4}}
    flat = hub.load_eval_results(one_peace)
    assert flat["stage"] == "stage2" and flat["audio_to_text_R@1"] == 0.3
    tasks = {r.task_type: r.metric_value for r in hub.build_eval_results(flat)}
    assert tasks == {"audio-to-text-retrieval": 0.3, "image-to-text-retrieval": 0.2,
                     "zero-shot-audio-classification": 0.4}

    tiny = {"dataset": "synthetic:5", "num_parameters": 6324, "accuracy": 0.3, "accuracy_stdev": 0.01,
            "macro_f1": 0.2, "per_fold": [{"accuracy": 0.3}], "training": {"batch_size": 8, "learning_rate": 1e-3}}
    results = hub.build_eval_results(hub.load_eval_results(tiny))
    assert {(r.metric_type, r.metric_value) for r in results} == {("accuracy", 0.3), ("macro_f1", 0.2)}


@pytest.mark.parametrize("bad, match", [(["accuracy", 1.0], "must be a dict"), ("/no/such/eval_results.json",
                                                                                   "not found")])
def test_load_eval_results_bad_input_names_the_problem(bad, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        hub.load_eval_results(bad)


def test_model_index_values_and_tasks_match_eval_results():
    results = hub.build_eval_results(hub.load_eval_results(EVAL_RESULTS), family_task="zero-shot-audio-classification")
    by_name = {r.metric_name: r for r in results}
    final = EVAL_RESULTS["stage_b"]
    assert by_name["ZSTE order accuracy"].metric_value == final["order_accuracy"]
    assert by_name["ZSTE relation accuracy"].metric_value == final["relation_accuracy"]
    assert by_name["Zero-shot accuracy"].metric_value == final["zero_shot_accuracy"]
    assert by_name["R@1"].task_type == "text-to-audio-retrieval" and by_name["R@1"].metric_value == 0.25
    assert by_name["R@10"].task_type == "audio-to-text-retrieval" and by_name["R@10"].metric_type == "recall@10"
    assert "loss" not in {r.metric_type for r in results}  # training bookkeeping is not a benchmark result
    assert {r.dataset_type for r in results} == {"synthetic"}


def _family_config(family):
    if family == "beats":
        from hf_alm.modeling.beats import tiny_beats_config

        config = tiny_beats_config(id2label={0: "a", 1: "b"}, label2id={"a": 0, "b": 1})
        config.architectures = ["BeatsForAudioClassification"]
    elif family == "clap_teminal":
        from hf_alm.modeling.clap_teminal import ClapTeminalConfig

        config = ClapTeminalConfig.from_preset("tiny")
        config.architectures = ["ClapTeminalModel"]
    elif family == "tiny_edge":
        from hf_alm.modeling.tiny_edge_transformer import TinyEdgeTransformerConfig

        config = TinyEdgeTransformerConfig.from_preset("tiny")
        config.architectures = ["TinyEdgeTransformerForAudioClassification"]
    else:
        from hf_alm.modeling.one_peace import OnePeaceConfig

        config = OnePeaceConfig.from_preset("tiny")
        config.architectures = ["OnePeaceModelWithProjection"]
    return config


@pytest.mark.parametrize("family, arxiv, weights_license, pipeline_tag", [
    ("beats", "2212.09058", "mit", "audio-classification"),
    ("clap_teminal", "2408.09269", "mit", "zero-shot-audio-classification"),
    ("tiny_edge", "2103.12157", "mit", "audio-classification"),
    ("one_peace", "2305.11172", "apache-2.0", "zero-shot-audio-classification"),
])
def test_every_family_card_has_metadata_sections_and_citation(family, arxiv, weights_license, pipeline_tag):
    config = _family_config(family)
    assert hub.detect_family(config) == family
    card = hub.render_model_card(config, repo_id=f"tester/{family}", eval_results=EVAL_RESULTS)
    parsed = ModelCard(str(card))  # huggingface_hub parses (and validates) the YAML and the model-index again
    assert parsed.data.pipeline_tag == pipeline_tag and parsed.data.license == weights_license
    assert parsed.data.library_name == "transformers" and "custom_code" in parsed.data.tags
    values = {r.metric_name: r.metric_value for r in parsed.data.eval_results}
    assert values["ZSTE order accuracy"] == EVAL_RESULTS["stage_b"]["order_accuracy"]
    text = str(card)
    for section in ("## How to use", "## Training data and procedure", "## Evaluation", "## Limitations",
                    "## License", "## Citation", "```bibtex", arxiv, "trust_remote_code=True"):
        assert section in text, (family, section)
    assert f"**Weights** (`model.safetensors`): `{weights_license}`" in text and "**Code**" in text
    assert "<!-- include:" not in text and "{{ " not in text  # every include and variable was rendered


def test_unknown_card_field_is_rejected(tiny_classifier_dir):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_classifier_dir)
    with pytest.raises(ValueError, match="unknown model-card field.*'licence'"):
        hub.render_model_card(config, repo_id="me/x", licence="mit")


# ------------------------------------------------------------------------------------------------ publish
def test_publish_stages_one_commit_with_card_and_remote_code(tiny_classifier_dir, hub_stub, tmp_path):
    before = _tree_digest(tiny_classifier_dir)
    result = hub.publish(tiny_classifier_dir, "tester/tiny-edge", private=True, revision="v1", token="hf_test",
                         commit_message="first upload", stage_dir=tmp_path / "staged",
                         base_model="tester/tiny-edge-base", datasets=["tester/sounds"])
    assert _tree_digest(tiny_classifier_dir) == before  # the source folder is untouched

    names = [c[0] for c in hub_stub.calls]
    assert names == ["create_repo", "create_branch", "upload_folder"]  # ONE commit
    create = hub_stub.calls[0][1]
    assert create["private"] is True and create["exist_ok"] is True and create["repo_id"] == "tester/tiny-edge"
    upload = hub_stub.calls[2][1]
    assert upload["revision"] == "v1" and upload["create_pr"] is False and upload["commit_message"] == "first upload"

    files = set(hub_stub.uploaded)
    assert files == {"README.md", "config.json", "model.safetensors", "preprocessor_config.json",
                     "eval_results.json", "configuration_tiny_edge_transformer.py",
                     "modeling_tiny_edge_transformer.py", "feature_extraction_tiny_edge_transformer.py"}
    assert sorted(files) == result.files and result.stage_dir == str(tmp_path / "staged")
    config = json.loads(hub_stub.uploaded["config.json"])
    assert config["auto_map"]["AutoModelForAudioClassification"].startswith("modeling_tiny_edge_transformer.")
    fe_config = json.loads(hub_stub.uploaded["preprocessor_config.json"])
    assert fe_config["auto_map"]["AutoFeatureExtractor"].startswith("feature_extraction_tiny_edge_transformer.")

    # the card, parsed back by huggingface_hub itself
    text = hub_stub.uploaded["README.md"].decode()
    card = ModelCard(text)
    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag == "audio-classification"
    assert data.license == "mit" and data.base_model == "tester/tiny-edge-base" and data.datasets == ["tester/sounds"]
    assert {"hf-alm", "audio", "custom_code"} <= set(data.tags)
    eval_json = json.loads((tiny_classifier_dir / "eval_results.json").read_text())
    final_accuracy = eval_json["final"]["accuracy"]
    assert [(r.metric_type, r.metric_value) for r in data.eval_results] == [("accuracy", final_accuracy)]
    meta = metadata_load(tmp_path / "staged" / "README.md")
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == eval_json["final"]["accuracy"]
    for section in ("## How to use", "## Training data and procedure", "## Evaluation", "## Limitations",
                    "## License", "## Citation", "2103.12157"):
        assert section in text
    assert "| Audio classification | Accuracy |" in text and "0.8125" in text
    assert "**Code**" in text and "**Weights**" in text


def test_publish_create_pr_and_model_object(hub_stub, tiny_classifier_dir):
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    model = AutoModelForAudioClassification.from_pretrained(tiny_classifier_dir)
    fe = AutoFeatureExtractor.from_pretrained(tiny_classifier_dir)
    result = hub.publish(model, "tester/tiny-pr", processor=fe, eval_results={"accuracy": 0.25}, create_pr=True,
                         token="hf_test")
    assert [c[0] for c in hub_stub.calls] == ["create_repo", "upload_folder"]  # no branch for a PR
    assert hub_stub.calls[1][1]["create_pr"] is True and result.pr_url.endswith("/discussions/1")
    assert result.stage_dir is None  # temporary staging is cleaned up
    assert "preprocessor_config.json" in hub_stub.uploaded
    assert ModelCard(hub_stub.uploaded["README.md"].decode()).data.eval_results[0].metric_value == 0.25


# ----------------------------------------------------------------------------------------- failure modes
def _assert_failed_cleanly(err, stub, source: Path, before, *needles):
    message = str(err.value)
    for needle in needles:
        assert re.search(needle, message, re.I), message
    assert not [c for c in stub.calls if c[0] == "upload_folder"]
    assert _tree_digest(source) == before


def test_offline_mode_is_a_clear_error(tiny_classifier_dir, hub_stub, monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    before = _tree_digest(tiny_classifier_dir)
    with pytest.raises(hub.HubPublishError) as err:
        hub.publish(tiny_classifier_dir, "tester/x", token="hf_test", stage_dir=tmp_path / "st")
    _assert_failed_cleanly(err, hub_stub, tiny_classifier_dir, before, "offline", "HF_HUB_OFFLINE")
    assert not (tmp_path / "st").exists() and not hub_stub.calls  # checked before any work


@pytest.mark.parametrize("status, needle", [(401, "401 Unauthorized"), (403, "403 Forbidden")])
def test_rejected_token_is_a_clear_error(tiny_classifier_dir, hub_stub, mock_transport, status, needle):
    mock_transport["handler"] = lambda request: httpx2.Response(status, json={"error": "Invalid credentials"})
    before = _tree_digest(tiny_classifier_dir)
    with pytest.raises(hub.HubPublishError) as err:
        hub.publish(tiny_classifier_dir, "tester/x", token="hf_bad")
    _assert_failed_cleanly(err, hub_stub, tiny_classifier_dir, before, needle, "token")
    assert not hub_stub.calls  # nothing was attempted after the check


def test_forbidden_repo_on_create_is_a_clear_error(tiny_classifier_dir, mock_transport, monkeypatch):
    """whoami accepts the token but the real create_repo request (through the stubbed transport) gets a 403."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    seen = []

    def handler(request):
        seen.append(request.url.path)
        if request.url.path.endswith("/whoami-v2"):
            return httpx2.Response(200, json={"name": "tester"})
        return httpx2.Response(403, json={"error": "You don't have the rights to create a model under this namespace"})

    mock_transport["handler"] = handler
    with pytest.raises(hub.HubPublishError, match="creating the repository other-org/x failed: HTTP 403"):
        hub.publish(tiny_classifier_dir, "other-org/x", token="hf_test")
    assert seen[:2] == ["/api/whoami-v2", "/api/repos/create"]  # (exist_ok then probes the repo)


def test_missing_token_is_a_clear_error(tiny_classifier_dir, monkeypatch, mock_transport, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "_resolve_token", lambda token: token)
    with pytest.raises(hub.HubPublishError, match="no Hugging Face token.*HF_TOKEN"):
        hub.publish(tiny_classifier_dir, "tester/x")


def test_connection_refused_and_dns_failure_are_clear_errors(tiny_classifier_dir, monkeypatch, tmp_path):
    """Real sockets (no mock): a closed loopback port and an unresolvable host name."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    hf_http.set_client_factory(hf_http.default_client_factory)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = _tree_digest(tiny_classifier_dir)
    with pytest.raises(hub.HubPublishError, match=r"cannot reach the Hugging Face Hub: connection refused"):
        hub.publish(tiny_classifier_dir, "tester/x", token="hf_test", endpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(hub.HubPublishError, match=r"cannot reach the Hugging Face Hub: (DNS lookup failed|cannot "
                                                   r"connect)"):
        hub.publish(tiny_classifier_dir, "tester/x", token="hf_test", endpoint="http://hf-alm-test.invalid")
    assert _tree_digest(tiny_classifier_dir) == before


def test_unresponsive_hub_times_out(tiny_classifier_dir, monkeypatch):
    """A loopback server that accepts connections and never answers: the check gives up after `timeout`."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    hf_http.set_client_factory(hf_http.default_client_factory)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        with pytest.raises(hub.HubPublishError, match=r"no answer from http://127\.0\.0\.1:\d+ within 0\.5 s"):
            hub.check_hub_access(token="hf_test", endpoint=f"http://127.0.0.1:{server.getsockname()[1]}",
                                 timeout=0.5)
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        server.close()


@pytest.mark.parametrize("repo_id", ["no spaces/allowed", "a/b/c", "", "user/--x"])
def test_invalid_repo_id_is_rejected_before_any_work(repo_id, tiny_classifier_dir):
    with pytest.raises(ValueError, match="invalid Hub repo_id"):
        hub.publish(tiny_classifier_dir, repo_id, token="hf_test")


def test_custom_feature_extractor_without_auto_class_is_refused(tiny_classifier_dir, tmp_path):
    """A custom preprocessor that never calls register_for_auto_class would give a Hub repo whose preprocessing
    cannot load without hf-alm: staging refuses it and names the fix."""
    from hf_alm.modeling.tiny_edge_transformer import TinyEdgeTransformerFeatureExtractor

    class UnregisteredFeatureExtractor(TinyEdgeTransformerFeatureExtractor):
        _auto_class = None

    with pytest.raises(hub.HubPublishError, match=r"UnregisteredFeatureExtractor .*does not call "
                                                  r"register_for_auto_class.*'AutoFeatureExtractor'"):
        hub.stage(tiny_classifier_dir, tmp_path / "st", repo_id="me/x", processor=UnregisteredFeatureExtractor())
    assert not (tmp_path / "st").exists()  # atomic: nothing half-written


def test_not_a_model_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        hub.stage(tmp_path, tmp_path / "out", repo_id="me/x")


def test_publish_from_args_is_the_recipes_push_step(monkeypatch, tmp_path, capsys):
    """Every recipe's --push_to_hub goes through publish_from_args: repo id defaults to the output folder's name."""
    import argparse

    calls = []
    monkeypatch.setattr(hub, "publish", lambda *a, **kw: calls.append((a, kw)) or
                        argparse.Namespace(repo_url="https://hub.invalid/org/run"))
    args = argparse.Namespace(output_dir=str(tmp_path / "my-run"), hub_model_id=None, hub_private=True,
                              dataset="esc10:/data")
    hub.publish_from_args(args, tmp_path / "model", eval_results=tmp_path / "eval_results.json")
    (model_dir, repo_id), kw = calls[0]
    assert repo_id == "my-run" and model_dir == tmp_path / "model"
    assert kw == {"private": True, "eval_results": tmp_path / "eval_results.json", "dataset_name": "esc10:/data"}
    assert "published to https://hub.invalid/org/run" in capsys.readouterr().out
    args.hub_model_id = "org/explicit"
    hub.publish_from_args(args, tmp_path / "model")
    assert calls[1][0][1] == "org/explicit" and calls[1][1]["eval_results"] is None


# ------------------------------------------------------------------------------------------- audit fixes
def test_one_peace_classifier_card_is_an_audio_classification_card(tmp_path):
    """A ONE-PEACE classifier was carded as zero-shot: pipeline_tag zero-shot-audio-classification, zero-shot /
    AutoModel snippets that fail for a classifier, and a contrastive-loss training text. Its card is now an
    audio-classification card whose snippets run (in a fresh process, without hf_alm)."""
    import os
    import subprocess
    import sys

    from hf_alm.modeling.one_peace import OnePeaceConfig, OnePeaceFeatureExtractor, OnePeaceForAudioClassification

    torch.manual_seed(0)
    labels = {0: "dog_bark", 1: "rain"}
    model = OnePeaceForAudioClassification(OnePeaceConfig.from_preset("tiny", id2label=labels,
                                                                      label2id={v: k for k, v in labels.items()}))
    run = tmp_path / "run"
    model.eval().save_pretrained(run)
    OnePeaceFeatureExtractor().save_pretrained(run)
    (run / "eval_results.json").write_text(json.dumps({"dataset": "esc10", "final": {"accuracy": 0.75}}))
    staged = hub.stage(run, tmp_path / "staged", repo_id="tester/one-peace-clf")
    text = (staged / "README.md").read_text()
    data = ModelCard(text).data
    assert data.pipeline_tag == "audio-classification"
    assert "zero-shot-audio-classification" not in data.tags and "audio-classification" in data.tags
    assert [(r.task_type, r.dataset_name, r.metric_value) for r in data.eval_results] == [
        ("audio-classification", "ESC-10", 0.75)]
    snippets = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(snippets) == 2
    assert 'pipeline("audio-classification"' in snippets[0] and "AutoModelForAudioClassification" in snippets[1]
    assert "zero-shot" not in "".join(snippets) and "get_audio_features" not in "".join(snippets)
    assert "contrastive" not in text.lower() and "cross-entropy" in text
    assert "attention-pooling classification head, 2\nclasses (dog_bark, rain)" in text
    assert "on **ESC-10**" in text  # the training section names the evaluation's dataset

    # the card's snippets run against the staged folder, in a process where hf_alm cannot be imported
    code = BLOCK_HF_ALM + "\n" + "\n".join(s.replace('"tester/one-peace-clf"', repr(str(staged))) for s in snippets)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), OMP_NUM_THREADS="1",
               TRANSFORMERS_VERBOSITY="error")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert re.search(r"'label': '(dog_bark|rain)'", proc.stdout)  # the pipeline's predictions
    assert proc.stdout.strip().splitlines()[-1] in {"dog_bark", "rain"}  # the Auto-class snippet's arg-max label


def test_card_without_a_dataset_names_none(tmp_path):
    """eval_results without a dataset were carded as "hf-alm synthetic sound events" (card text and model-index)."""
    config = _family_config("tiny_edge")
    card = hub.render_model_card(config, repo_id="tester/no-dataset", eval_results={"final": {"accuracy": 0.5}})
    text = str(card)
    assert "synthetic sound events" not in text and "type: synthetic" not in text
    parsed = ModelCard(text)  # the model-index stays valid: huggingface_hub parses it back
    assert [(r.dataset_type, r.dataset_name, r.metric_value) for r in parsed.data.eval_results] == [
        ("unspecified", "unspecified dataset", 0.5)]
    assert "The evaluation dataset was not stated" in text
    assert "recipes/tiny_edge.py`):" in text  # the training section names no dataset ("... on **X**:")
    (tmp_path / "README.md").write_text(text)
    meta = metadata_load(tmp_path / "README.md")
    assert meta["model-index"][0]["results"][0]["dataset"] == {"name": "unspecified dataset", "type": "unspecified"}
    assert hub.build_eval_results({"accuracy": 0.5})[0].dataset_type == "unspecified"

    # a stated dataset is still named, in the table, the model-index and the training section
    text = str(hub.render_model_card(config, repo_id="tester/esc", eval_results={"final": {"accuracy": 0.5}},
                                     dataset_name="esc50:/local/path"))
    assert "on\n**ESC-50**" in text and "| ESC-50 |" in text and "not stated" not in text and "/local/path" not in text
    assert {(r.dataset_type, r.dataset_name) for r in ModelCard(text).data.eval_results} == {("esc50", "ESC-50")}
    # an explicitly synthetic run still says so
    text = str(hub.render_model_card(config, repo_id="tester/syn", eval_results={"dataset": "synthetic",
                                                                                   "accuracy": 0.5}))
    assert "hf-alm synthetic sound events" in text and "not stated" not in text

"""Coders on the timeline: a second researcher's codes form their own layer and comparison, and
never change the participants' figures (the recording of tests/test_timeline_view.py)."""

from __future__ import annotations

import ipr
from ipr import figures as figures_layer
from ipr import timeline_service as ts
from ipr.models import ResearcherAnnotation
from tests.test_timeline_view import dyad_setup, sample_mp4  # noqa: F401 (fixtures)


def figures(api, rec_id: int) -> dict:
    resp = api(f"/api/v1/recordings/{rec_id}/timeline?tolerance_ms=5000")
    assert resp.status_code == 200, resp.json
    return resp.json


def test_second_coder_gets_a_layer_and_leaves_participant_figures_alone(
    db,
    dyad_setup,  # noqa: F811
    make_user,
    owner_web,
) -> None:
    rec, ids, codes, api = (dyad_setup[k] for k in ("rec", "ids", "codes", "api"))
    dyad_setup["compute"]()
    before = figures(api, rec.id)
    export_before = api(f"/api/v1/recordings/{rec.id}/export.json").json
    # Before: the client's own codes (Insight on c1) against the one coder (Rupture on c2).
    assert [(c["lane"], c["a"], c["b"]) for c in before["figures"]["coders"]["comparisons"]] == [
        ("client", "participant", "owner@example.org")
    ]
    second = make_user("second@example.org")
    db.add(
        ResearcherAnnotation(
            study_id=rec.study_id, moment_id=ids["c2"], user_id=second.id,
            codes=[codes["rupture"]], note="",
        )
    )  # fmt: skip
    db.add(
        ResearcherAnnotation(
            study_id=rec.study_id, moment_id=ids["c1"], user_id=second.id,
            codes=[codes["rupture"]], note="",
        )
    )  # fmt: skip
    figures_layer.mark_stale(db, rec.id, rec.study_id)  # as recall.annotate does
    db.commit()
    dyad_setup["compute"]()
    after = figures(api, rec.id)
    export_after = api(f"/api/v1/recordings/{rec.id}/export.json").json
    for doc in (export_before, export_after):  # the export's participant figures, unchanged too
        doc["study"]["dyads"][0]["recordings"][0].pop("moments")
    assert export_after["study"] == export_before["study"]
    assert (
        export_after["provenance"]["recordings"][0]["figures"]
        == export_before["provenance"]["recordings"][0]["figures"]
    )
    coders = after["figures"].pop("coders")
    before["figures"].pop("coders")
    assert after["figures"] == before["figures"]
    assert after["pairs"] == before["pairs"] and after["unmatched"] == before["unmatched"]
    assert [c["coder"] for c in after["lanes"]["researcher"]] == [
        "second@example.org",  # c1 at 12 s
        "owner@example.org",  # c2 at 50 s, the older coding first
        "second@example.org",
    ]
    # Client lane: the participant's own codes (Insight on c1), owner (Rupture on c2), second
    # (Rupture on c1 and c2): three comparisons, in that order.
    assert [(c["lane"], c["a"], c["b"]) for c in coders["comparisons"]] == [
        ("client", "participant", "owner@example.org"),
        ("client", "participant", "second@example.org"),
        ("client", "owner@example.org", "second@example.org"),
    ]
    # The therapist's own Insight code is a layer too, but no coder coded the therapist lane.
    rupture = {r["code"]: r for r in coders["comparisons"][2]["per_code"]}["Rupture"]
    assert (rupture["n_a"], rupture["n_b"], rupture["n_pairs"]) == (1, 2, 1)
    assert rupture["co_marking_rate"] == 2 / 3
    # 60 bins: owner marks 50-54 (5), second marks 12 and 50-54 (6); they differ on bin 12 only.
    assert rupture["time_unit_kappa"]["observed"] == 59 / 60
    assert rupture["time_unit_kappa"]["bin_ms"] == 1000
    page = owner_web.get(f"/recordings/{rec.id}/timeline").get_data(as_text=True)
    assert "Agreement between coders" in page
    assert "Client's moments: owner@example.org · second@example.org" in page


def test_exports_keep_each_coder_and_carry_provenance(db, dyad_setup, make_user) -> None:  # noqa: F811
    rec, ids, codes, api = (dyad_setup[k] for k in ("rec", "ids", "codes", "api"))
    second = make_user("second@example.org")
    db.add(
        ResearcherAnnotation(
            study_id=rec.study_id, moment_id=ids["c2"], user_id=second.id,
            codes=[codes["insight"], codes["rupture"]], note="both",
        )
    )  # fmt: skip
    figures_layer.mark_stale(db, rec.id, rec.study_id)  # as recall.annotate does
    db.commit()
    dyad_setup["compute"]()
    doc = api(f"/api/v1/recordings/{rec.id}/export.json").json
    moments = doc["study"]["dyads"][0]["recordings"][0]["moments"]
    c2 = next(m for m in moments if m["id"] == ids["c2"])
    assert c2["codings"] == [
        {"coder": "owner@example.org", "codes": ["Rupture"], "note": "r1"},
        {"coder": "second@example.org", "codes": ["Insight", "Rupture"], "note": "both"},
    ]
    assert c2["researcher_codes"] == ["Insight", "Rupture"]  # the union, for older readers
    prov = doc["provenance"]
    assert prov["software"]["version"] == ipr.__version__
    assert prov["parameters"]["matching"] == {"tolerance_ms": 5000}
    assert prov["parameters"]["chance_baseline"] == {"n_shifts": 1000, "seed": 0}
    assert prov["parameters"]["time_unit_kappa"] == {"bin_ms": 1000}
    assert prov["parameters"]["synchrony"] == {
        "window_s": 30.0, "step_s": 10.0, "max_lag_s": 5.0, "fisher_z": True, "absolute": True,
    }  # fmt: skip
    assert prov["parameters"]["synchrony_surrogates"] == {
        "n": ts.N_SURROGATES, "seed": 0, "segment_s": 30.0, "statistic": "grand_mean",
    }  # fmt: skip
    recording = prov["recordings"][0]
    none_imported = {"imported_moments": 0, "import_sources": []}
    assert recording["recall"] == {
        "client": {
            "participant_code": "C01", "mode": "self", "status": "in_progress", "moments": 2,
            **none_imported,
        },
        "therapist": {
            "participant_code": "T01", "mode": "self", "status": "submitted", "moments": 2,
            **none_imported,
        },
    }  # fmt: skip
    figures = recording["figures"]
    # the same time-unit kappa as the timeline (see test_timeline_view), with its parts
    assert figures["kappa_n_bins"] == 60 and figures["kappa_bin_ms"] == 1000
    assert figures["kappa_observed"] == 52 / 60
    assert abs(figures["kappa_expected"] - 3144 / 3600) < 1e-12
    assert figures["chance_n_shifts"] == 1000 and figures["chance_seed"] == 0
    comparisons = recording["coder_agreement"]["comparisons"]
    assert [(c["lane"], c["a"], c["b"]) for c in comparisons][-1] == (
        "client",
        "owner@example.org",
        "second@example.org",
    )
    csv_text = api(f"/api/v1/recordings/{rec.id}/export.csv").data.decode("utf-8-sig")
    assert "# parameters.time_unit_kappa.bin_ms: 1000\r\n" in csv_text
    c2_rows = [line for line in csv_text.split("\r\n") if f",{ids['c2']},50000," in line]
    assert [row.split(",")[15:18] for row in c2_rows] == [
        ["owner@example.org", "Rupture", "r1"],
        ["second@example.org", "Insight;Rupture", "both"],
    ]


def test_methods_export_by_api_page_and_cli(app, dyad_setup, owner_web, tmp_path) -> None:  # noqa: F811
    rec, api = dyad_setup["rec"], dyad_setup["api"]
    resp = api(f"/api/v1/recordings/{rec.id}/export.methods")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/markdown; charset=utf-8"
    assert resp.headers["Content-Disposition"] == "attachment; filename=01_Session_3.md"
    text = resp.get_data(as_text=True)
    para = text.split("\n")[2]
    assert "1 session recording of 1 dyad (2 self-guided recall sessions)" in para
    assert "2 therapist moments and 2 client moments" in para
    assert "at most 5 s" in para and "(1,000 shifts, seed 0)" in para
    assert "Researcher codes were kept per coder (1 coder)" in para
    assert f"IPR annotator version {ipr.__version__}" in para
    page = owner_web.get(f"/recordings/{rec.id}/export").get_data(as_text=True)
    assert 'value="methods"' in page and "Methods paragraph" in page
    timeline_page = owner_web.get(f"/recordings/{rec.id}/timeline").get_data(as_text=True)
    assert f'href="/recordings/{rec.id}/export?format=methods"' in timeline_page
    download = owner_web.get(f"/recordings/{rec.id}/export?format=methods&include_text=1")
    stable = para.split(" the export of ")[0]  # the export time may differ by a second
    assert download.status_code == 200
    assert download.get_data(as_text=True).split("\n")[2].split(" the export of ")[0] == stable
    out = tmp_path / "methods.md"
    result = app.test_cli_runner().invoke(
        args=["ipr", "export", str(rec.id), "--format", "methods", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().split("\n")[2].split(" the export of ")[0] == stable

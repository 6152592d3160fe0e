"""A campaign's report as API Gateway and Lambda carry it: gzip-compressed for a client that accepts it, and a 406
that says so, not a 500, when the report is more than a Lambda answer carries uncompressed."""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json

from callbridge.domain.limits import LAMBDA_PAYLOAD_BYTES
from callbridge.logic.campaigns import REPORT_COLUMNS

from tests.conftest import ApiClient, ApiResponse
from tests.integration.test_campaigns import api_module, aws, campaign_body, created  # noqa: F401 - fixtures

GZIP = {"Accept-Encoding": "gzip, deflate"}


def report(api: ApiClient, campaign_id: str, headers: dict[str, str] | None = None) -> ApiResponse:
    return api.get(f"/pcall/campaigns/{campaign_id}/report.csv", headers=headers)


def unzipped(response: ApiResponse) -> str:
    assert response.headers["Content-Encoding"] == "gzip"
    return gzip.decompress(base64.b64decode(response.body)).decode()


def test_a_client_that_accepts_gzip_gets_the_report_compressed(api: ApiClient) -> None:
    campaign = created(api, campaign_body(3))

    plain = report(api, campaign["id"])
    compressed = report(api, campaign["id"], GZIP)

    assert plain.status == compressed.status == 200
    assert "Content-Encoding" not in plain.headers
    assert unzipped(compressed) == plain.body
    assert [r["metadata.row"] for r in csv.DictReader(io.StringIO(plain.body))] == ["0", "1", "2"]


def test_a_report_over_what_an_answer_carries_is_a_406_uncompressed_and_whole_compressed(api: ApiClient) -> None:
    # 1,700 calls whose metadata (2,030 bytes of JSON text each, mostly quotes) doubles again as the answer's JSON
    quotes = '"' * 1000
    body = campaign_body(1700)
    for call in body["calls"]:
        call["metadata"]["note"] = quotes
    campaign = created(api, body)

    refused = report(api, campaign["id"])
    compressed = report(api, campaign["id"], GZIP)

    assert refused.status == 406
    assert refused.data["code"] == 406
    assert "ask for it gzip-compressed: Accept-Encoding: gzip (curl --compressed)" in refused.data["code_desc"]
    assert compressed.status == 200
    text = unzipped(compressed)
    assert len(json.dumps(text)) > LAMBDA_PAYLOAD_BYTES  # uncompressed, it could not have been answered
    assert len(json.dumps(compressed.body)) < LAMBDA_PAYLOAD_BYTES
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == [*REPORT_COLUMNS, "metadata.note", "metadata.row"]
    assert [r["metadata.row"] for r in rows] == [str(i) for i in range(1700)]
    assert {r["metadata.note"] for r in rows} == {quotes}

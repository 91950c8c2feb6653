"""observe, step and scrape through the API on realistic pages (a product list, a form)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def on_page(client, pages_server):
    def open_page(name: str) -> str:
        session_id = client.post("/v1/computers", {}).json()["id"]
        response = client.post(f"/v1/computers/{session_id}/navigate", {"url": f"{pages_server}/{name}"})
        assert response.json()["status"] == "success", response.text
        return session_id

    return open_page


def _act(client, session_id, path, body):
    response = client.post(f"/v1/computers/{session_id}/{path}", body)
    assert response.status_code == 200, response.text
    return response.json()


def test_observe_lists_visible_interactive_elements_with_boxes(client, on_page):
    session_id = on_page("products.html")
    page = _act(client, session_id, "observe", {})["result"]
    assert page["title"] == "Products - Page 1"
    assert page["viewport"]["width"] == 1024
    texts = [e["text"] for e in page["elements"]]
    assert "Espresso Machine" in texts and "Add to cart" in texts
    assert not any("Secret promo" in (t or "") for t in texts), "hidden elements are not listed"
    for element in page["elements"]:
        assert element["id"].startswith("e") and element["selector"]
        box = element["bbox"]
        assert box["width"] > 0 and box["height"] > 0
    sold_out = next(e for e in page["elements"] if e["text"] == "Sold out")
    assert sold_out.get("disabled") is True
    bounded = _act(client, session_id, "observe", {"max_elements": 3})["result"]
    assert len(bounded["elements"]) == 3 and bounded["truncated"] is True


def test_step_fills_and_submits_a_form_by_selector_id_and_text(client, on_page):
    session_id = on_page("form.html")
    elements = _act(client, session_id, "observe", {})["result"]["elements"]
    name_field = next(e for e in elements if e.get("selector") == "#name")
    steps = [
        {"action": "fill", "target": {"element_id": name_field["id"]}, "value": "Ada Lovelace"},
        {"action": "fill", "selector": "input[name=email]", "value": "ada@example.com"},
        {"action": "select", "target": {"selector": "#country"}, "value": "fr"},
        {"action": "click", "target": {"text": "Pro"}},
        {"action": "click", "target": {"text": "Send me the newsletter"}},
        {"action": "fill", "target": {"selector": "#message"}, "value": "Hello"},
        {"action": "click", "target": {"text": "Send message"}},
    ]
    for step in steps:
        done = _act(client, session_id, "step", step)
        assert done["status"] == "success", (step, done)
        assert "elements" in done["result"]["page"]
    html = _act(client, session_id, "html", {})["result"]["html_content"]
    submitted = json.loads(html.split("Submitted: ", 1)[1].split("</div>", 1)[0].replace("&quot;", '"'))
    assert submitted["name"] == "Ada Lovelace" and submitted["email"] == "ada@example.com"
    assert submitted["country"] == "fr" and submitted["plan"] == "pro" and submitted["newsletter"] == "on"
    assert submitted["message"] == "Hello"


def test_step_reports_a_missing_element_as_an_error(client, on_page):
    session_id = on_page("form.html")
    missing = _act(
        client, session_id, "step", {"action": "click", "target": {"text": "No such"}, "timeout_ms": 100}
    )
    assert missing["status"] == "error" and "No such" in missing["error_message"]


def test_scrape_extracts_a_nested_schema_with_absolute_links(client, on_page, pages_server):
    session_id = on_page("products.html")
    schema = {
        "fields": {
            "heading": "h1",
            "products": {
                "selector": ".product",
                "list": True,
                "fields": {
                    "name": ".name",
                    "price": ".price",
                    "link": {"selector": ".name a", "attr": "href"},
                    "image": {"selector": "img", "attr": "src"},
                    "rating": {"selector": ".rating", "attr": "data-rating"},
                    "tags": {"selector": ".tags li", "list": True},
                },
            },
        }
    }
    result = _act(client, session_id, "scrape", {"schema": schema})["result"]
    data = result["data"]
    assert data["heading"] == "Kitchen & Coffee"
    first, _, third = data["products"]
    assert first == {
        "name": "Espresso Machine",
        "price": "$199.00",
        "link": f"{pages_server}/products/espresso-machine.html",
        "image": f"{pages_server}/img/espresso.png",
        "rating": "4.5",
        "tags": ["kitchen", "coffee"],
    }
    assert third["link"] == f"{pages_server}/shop/kettle?ref=list"
    assert third["rating"] is None and third["tags"] == []


def test_scrape_returns_the_page_as_markdown_or_text(client, on_page):
    session_id = on_page("products.html")
    markdown = _act(client, session_id, "scrape", {})["result"]["markdown"]
    assert "# Kitchen & Coffee" in markdown
    assert "[Espresso Machine](" in markdown
    assert "Secret promo" not in markdown
    text = _act(client, session_id, "scrape", {"format": "text"})["result"]["text"]
    assert "Burr Grinder" in text and "<" not in text

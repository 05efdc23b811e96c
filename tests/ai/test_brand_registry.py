"""The names a prompt may use come from the brand's own data: tags from ingested customers, products from ordered
items, campaigns by name. Registries are written once per new name (not by every batch) and read bounded."""
from __future__ import annotations

from pymongo import MongoClient, monitoring

from crm.ai import registry
from crm.models.customers import CustomerIn
from crm.services import products, tags
from tests.helpers import assert_error


class Updates(monitoring.CommandListener):
    """Counts the write commands sent to one collection."""

    def __init__(self, collection: str):
        self.collection, self.writes = collection, 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("update", "insert") and event.command.get(event.command_name) == self.collection:
            self.writes += 1

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


def _watched(env, collection: str):
    listener = Updates(collection)
    client = MongoClient(env["MONGO_URI"], event_listeners=[listener])
    return client[env["MONGO_DB"]][collection], listener, client


def test_a_product_is_written_when_new_or_renamed_not_by_every_batch(env, db):
    registry_collection, listener, client = _watched(env, products.PRODUCT_REGISTRY)
    with client:
        products.register(registry_collection, [("TEA-01", "Chai"), ("MUG-7", "Mug"), ("TEA-01", "Masala Chai")])
        assert listener.writes == 1
        products.register(registry_collection, [("TEA-01", "Masala Chai"), ("MUG-7", "Mug")])
        assert listener.writes == 1, "a batch of known products wrote the registry again"
        products.register(registry_collection, [("MUG-7", "Ceramic Mug")])
        assert listener.writes == 2
    assert products.known(db[products.PRODUCT_REGISTRY]) == {"MUG-7": "Ceramic Mug", "TEA-01": "Masala Chai"}


def test_a_tag_is_written_once_and_the_registries_are_read_bounded(env, db, monkeypatch):
    registry_collection, listener, client = _watched(env, tags.TAG_REGISTRY)
    customers = [CustomerIn(name="A", email="a@example.com", tags=["VIP", "wholesale"]),
                 CustomerIn(name="B", email="b@example.com", tags=["vip"])]
    with client:
        tags.register(registry_collection, customers)
        tags.register(registry_collection, customers)
        assert listener.writes == 1
    assert tags.known(db[tags.TAG_REGISTRY]) == ["vip", "wholesale"]
    monkeypatch.setattr(tags, "MAX_LISTED", 1)
    monkeypatch.setattr(products, "MAX_LISTED", 1)
    products.register(db[products.PRODUCT_REGISTRY], [("A-1", "Apple"), ("B-2", "Banana")])
    assert (tags.known(db[tags.TAG_REGISTRY]), products.known(db[products.PRODUCT_REGISTRY])) == (["vip"],
                                                                                                   {"A-1": "Apple"})


def test_the_endpoint_reads_tags_products_and_campaigns_from_the_brands_data(api, consumers, db):
    api.post("/api/customers", {"customers": [
        {"name": "Asha", "email": "asha@example.com", "tags": ["vip"], "attributes": {"city": "Delhi"}},
        {"name": "Ravi", "email": "ravi@example.com", "tags": ["wholesale"], "attributes": {"city": "Delhi"}}]})
    consumers.drain("CustomerIngestQueue")
    status, body, _ = api.post("/api/ai/rules", {"prompt": "didn't open the Diwali Sale campaign"})
    assert status == 422 and "Diwali" in body["error"]["message"], "no campaign has that name yet"
    api.post("/api/orders", {"order_id": "o-1", "customer_email": "asha@example.com", "amount": 450,
                             "items": [{"sku": "TEA-01", "name": "Masala Chai", "qty": 1, "price": 450}]})
    consumers.drain("OrderIngestQueue")
    _, segment, _ = api.post("/api/segments", {"name": "Delhi", "rules": {
        "field": "attributes.city", "op": "==", "value": "Delhi"}})
    status, campaign, _ = api.post("/api/campaigns", {"name": "Diwali Sale", "segment_id": segment["id"],
                                                      "message": "Hi {{first_name}}"})
    assert status == 202, campaign

    asked = {
        "vip customers in Delhi": {"and": [{"field": "tags", "op": "has_any", "value": ["vip"]},
                                           {"field": "attributes.city", "op": "==", "value": "Delhi"}]},
        "bought masala chai in the last 30 days": {"and": [
            {"field": "bought", "days": 30, "op": "has_any", "value": ["TEA-01"]}]},
        "didn't open the diwali sale campaign": {"and": [
            {"field": "campaign", "campaign_id": campaign["id"], "op": "!=", "value": "opened"}]},
    }
    for prompt, expected in asked.items():
        status, body, _ = api.post("/api/ai/rules", {"prompt": prompt})
        assert status == 200, (prompt, body)
        assert body["rules"] == expected, prompt
        status, preview, _ = api.post("/api/segments/preview", {"rules": body["rules"]})
        assert status == 200, preview
    assert "Diwali Sale" in api.post("/api/ai/rules", {"prompt": "clicked the Diwali Sale"})[1]["explanation"]
    status, body, _ = api.post("/api/ai/rules", {"prompt": "whales in Delhi"})
    assert status == 422
    assert_error(body, "prompt_not_understood", ["body", "prompt"])
    assert "whales" in body["error"]["message"]


def test_campaigns_are_known_by_name_and_nameless_ones_are_skipped(db):
    db.campaigns.insert_many([{"name": "Weekly Newsletter"}, {"name": "Weekly Newsletter"}, {"name": 7}])
    loaded = registry.load(db)
    assert [name for _, name in loaded.campaigns] == ["Weekly Newsletter", "Weekly Newsletter"]
    assert loaded.day() is not None

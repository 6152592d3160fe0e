"""DynamoDB adapters, one per job: the item codec, the calls store, accounts, idempotency records, IVR menus."""

"""/v1/webhook_endpoints: webhook endpoints managed with the openai SDK's ``client.webhooks``."""

"""The offline runner: serves template.yaml's functions locally, the way API Gateway and SQS would call them.

Dev-only; nothing here is deployed.
"""

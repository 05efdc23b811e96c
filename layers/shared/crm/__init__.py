"""Mini CRM shared package: everything the Lambda functions have in common."""

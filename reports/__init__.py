"""Reports that read several apps (usage, the account overview); above sessions in the layers."""

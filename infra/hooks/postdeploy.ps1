# azd postdeploy hook (Windows): same steps as postdeploy.sh - subscribe the key_vault_events function
# to the vault's near-expiry events once the deployed host has indexed it. Needs `az login`.
$ErrorActionPreference = 'Stop'

$required = @(
  'AZURE_SUBSCRIPTION_ID', 'AZURE_RESOURCE_GROUP', 'AZURE_FUNCTION_APP_NAME', 'AZURE_FUNCTION_APP_ID',
  'KEY_VAULT_RESOURCE_GROUP', 'KEY_VAULT_EVENTS_SYSTEM_TOPIC_NAME', 'DEAD_LETTER_STORAGE_ACCOUNT_ID',
  'DEAD_LETTER_CONTAINER_NAME'
)
foreach ($name in $required) {
  if ([string]::IsNullOrEmpty([Environment]::GetEnvironmentVariable($name))) {
    Write-Error "postdeploy: $name is not set; run 'azd provision' first (it writes the outputs to the azd environment)."
    exit 2
  }
}

$functionName = if ($env:KEY_VAULT_EVENTS_FUNCTION) { $env:KEY_VAULT_EVENTS_FUNCTION } else { 'key_vault_events' }
$attempts = if ($env:POSTDEPLOY_WAIT_ATTEMPTS) { [int]$env:POSTDEPLOY_WAIT_ATTEMPTS } else { 30 }
$interval = if ($env:POSTDEPLOY_WAIT_SECONDS) { [int]$env:POSTDEPLOY_WAIT_SECONDS } else { 10 }
$template = Join-Path (Split-Path -Parent $PSScriptRoot) 'app/key-vault-events-subscription.bicep'

$attempt = 1
while ($true) {
  az functionapp function show --subscription $env:AZURE_SUBSCRIPTION_ID `
    --resource-group $env:AZURE_RESOURCE_GROUP --name $env:AZURE_FUNCTION_APP_NAME `
    --function-name $functionName --query id --output tsv *> $null
  if ($LASTEXITCODE -eq 0) { break }
  if ($attempt -ge $attempts) {
    Write-Error "postdeploy: function '$functionName' did not appear in '$($env:AZURE_FUNCTION_APP_NAME)' after $attempts checks; is the code deployed?"
    exit 1
  }
  Write-Host "postdeploy: waiting for function '$functionName' to be indexed ($attempt/$attempts)"
  $attempt++
  Start-Sleep -Seconds $interval
}

Write-Host "postdeploy: subscribing '$functionName' to Key Vault events of topic '$($env:KEY_VAULT_EVENTS_SYSTEM_TOPIC_NAME)'"
az deployment group create --subscription $env:AZURE_SUBSCRIPTION_ID `
  --resource-group $env:KEY_VAULT_RESOURCE_GROUP `
  --name key-vault-events-subscription `
  --template-file $template `
  --parameters systemTopicName=$env:KEY_VAULT_EVENTS_SYSTEM_TOPIC_NAME `
  functionAppId=$env:AZURE_FUNCTION_APP_ID `
  functionName=$functionName `
  deadLetterStorageAccountId=$env:DEAD_LETTER_STORAGE_ACCOUNT_ID `
  deadLetterContainerName=$env:DEAD_LETTER_CONTAINER_NAME `
  --output none
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
Write-Host 'postdeploy: Key Vault event subscription is in place'

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

# Admin auth (KEY_VAULT_EVENTS_ENTRA_APPLICATION set by `azd provision`): a WebHook with Microsoft Entra
# authentication; the URL's system key goes to the template as a @secure() parameter in a temporary file.
$extra = @()
$secureParams = $null
$entraApp = $env:KEY_VAULT_EVENTS_ENTRA_APPLICATION
if (-not [string]::IsNullOrEmpty($entraApp)) {
  foreach ($name in @('AZURE_TENANT_ID', 'AZURE_FUNCTION_APP_URL')) {
    if ([string]::IsNullOrEmpty([Environment]::GetEnvironmentVariable($name))) {
      Write-Error "postdeploy: $name is not set; run 'azd provision' first (it writes the outputs to the azd environment)."
      exit 2
    }
  }
  $systemKey = az functionapp keys list --subscription $env:AZURE_SUBSCRIPTION_ID `
    --resource-group $env:AZURE_RESOURCE_GROUP --name $env:AZURE_FUNCTION_APP_NAME `
    --query systemKeys.eventgrid_extension --output tsv
  if ([string]::IsNullOrEmpty($systemKey)) {
    Write-Error "postdeploy: '$($env:AZURE_FUNCTION_APP_NAME)' has no eventgrid_extension system key yet; has the host started with the Event Grid trigger?"
    exit 1
  }
  $secureParams = New-TemporaryFile
  $url = "$($env:AZURE_FUNCTION_APP_URL)/runtime/webhooks/eventgrid?functionName=$functionName&code=$systemKey"
  @{ '$schema' = 'https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#'; contentVersion = '1.0.0.0'; parameters = @{ webhookEndpointUrl = @{ value = $url } } } |
    ConvertTo-Json -Depth 5 | Set-Content -Path $secureParams -Encoding utf8
  $extra = @('--parameters', "entraApplicationIdOrUri=$entraApp", "entraTenantId=$($env:AZURE_TENANT_ID)", '--parameters', "@$secureParams")
  Write-Host "postdeploy: admin auth is on; delivering as a WebHook with Microsoft Entra authentication for app '$entraApp'"
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
  @extra `
  --output none
$deployExit = $LASTEXITCODE
if ($secureParams) { Remove-Item -Force $secureParams }
if ($deployExit -ne 0) { exit $deployExit }
Write-Host 'postdeploy: Key Vault event subscription is in place'

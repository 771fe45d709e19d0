#!/bin/sh
# azd postdeploy hook: subscribe the key_vault_events function to the vault's near-expiry events.
# Event Grid checks that an AzureFunction destination exists, so this runs after the code is deployed,
# once the host has indexed the function. Re-running it updates the same subscription.
# Needs the Azure CLI signed in (`az login`) to the subscription azd deployed to.
# With admin auth on (KEY_VAULT_EVENTS_ENTRA_APPLICATION set by `azd provision`), App Service
# Authentication guards every path, so the subscription becomes a WebHook with Microsoft Entra
# authentication to the function's Event Grid webhook (docs/DEPLOY.md "Admin API authentication").
set -eu

require() {
  eval "value=\${$1:-}"
  if [ -z "$value" ]; then
    echo "postdeploy: $1 is not set; run 'azd provision' first (it writes the outputs to the azd environment)." >&2
    exit 2
  fi
}

for name in AZURE_SUBSCRIPTION_ID AZURE_RESOURCE_GROUP AZURE_FUNCTION_APP_NAME AZURE_FUNCTION_APP_ID \
  KEY_VAULT_RESOURCE_GROUP KEY_VAULT_EVENTS_SYSTEM_TOPIC_NAME DEAD_LETTER_STORAGE_ACCOUNT_ID \
  DEAD_LETTER_CONTAINER_NAME; do
  require "$name"
done

function_name="${KEY_VAULT_EVENTS_FUNCTION:-key_vault_events}"
attempts="${POSTDEPLOY_WAIT_ATTEMPTS:-30}"
interval="${POSTDEPLOY_WAIT_SECONDS:-10}"
template="$(cd "$(dirname "$0")/.." && pwd)/app/key-vault-events-subscription.bicep"

attempt=1
until az functionapp function show --subscription "$AZURE_SUBSCRIPTION_ID" \
  --resource-group "$AZURE_RESOURCE_GROUP" --name "$AZURE_FUNCTION_APP_NAME" \
  --function-name "$function_name" --query id --output tsv >/dev/null 2>&1; do
  if [ "$attempt" -ge "$attempts" ]; then
    echo "postdeploy: function '$function_name' did not appear in '$AZURE_FUNCTION_APP_NAME' after $attempts checks; is the code deployed?" >&2
    exit 1
  fi
  echo "postdeploy: waiting for function '$function_name' to be indexed ($attempt/$attempts)"
  attempt=$((attempt + 1))
  sleep "$interval"
done

# Admin auth: the webhook URL carries the Event Grid extension's system key. It goes to the template as a
# @secure() parameter through a private temporary file, never on a command line or into an output.
entra_app="${KEY_VAULT_EVENTS_ENTRA_APPLICATION:-}"
secure_params=""
if [ -n "$entra_app" ]; then
  require AZURE_TENANT_ID
  require AZURE_FUNCTION_APP_URL
  system_key="$(az functionapp keys list --subscription "$AZURE_SUBSCRIPTION_ID" \
    --resource-group "$AZURE_RESOURCE_GROUP" --name "$AZURE_FUNCTION_APP_NAME" \
    --query systemKeys.eventgrid_extension --output tsv)"
  if [ -z "$system_key" ]; then
    echo "postdeploy: '$AZURE_FUNCTION_APP_NAME' has no eventgrid_extension system key yet; has the host started with the Event Grid trigger?" >&2
    exit 1
  fi
  secure_params="$(umask 077 && mktemp)"
  trap 'rm -f "$secure_params"' EXIT INT TERM
  printf '{"$schema":"https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#","contentVersion":"1.0.0.0","parameters":{"webhookEndpointUrl":{"value":"%s/runtime/webhooks/eventgrid?functionName=%s&code=%s"}}}\n' \
    "$AZURE_FUNCTION_APP_URL" "$function_name" "$system_key" > "$secure_params"
  set -- --parameters entraApplicationIdOrUri="$entra_app" entraTenantId="$AZURE_TENANT_ID" \
    --parameters "@$secure_params"
  echo "postdeploy: admin auth is on; delivering as a WebHook with Microsoft Entra authentication for app '$entra_app'"
else
  set --
fi

echo "postdeploy: subscribing '$function_name' to Key Vault events of topic '$KEY_VAULT_EVENTS_SYSTEM_TOPIC_NAME'"
az deployment group create --subscription "$AZURE_SUBSCRIPTION_ID" \
  --resource-group "$KEY_VAULT_RESOURCE_GROUP" \
  --name key-vault-events-subscription \
  --template-file "$template" \
  --parameters systemTopicName="$KEY_VAULT_EVENTS_SYSTEM_TOPIC_NAME" \
  functionAppId="$AZURE_FUNCTION_APP_ID" \
  functionName="$function_name" \
  deadLetterStorageAccountId="$DEAD_LETTER_STORAGE_ACCOUNT_ID" \
  deadLetterContainerName="$DEAD_LETTER_CONTAINER_NAME" \
  "$@" \
  --output none
echo "postdeploy: Key Vault event subscription is in place"

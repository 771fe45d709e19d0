#!/bin/sh
# azd postdeploy hook: subscribe the key_vault_events function to the vault's near-expiry events.
# Event Grid checks that an AzureFunction destination exists, so this runs after the code is deployed,
# once the host has indexed the function. Re-running it updates the same subscription.
# Needs the Azure CLI signed in (`az login`) to the subscription azd deployed to.
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
  --output none
echo "postdeploy: Key Vault event subscription is in place"

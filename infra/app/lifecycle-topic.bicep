// Optional custom topic for KeyRotation.* lifecycle events (ROTATION_EVENTS_TOPIC_ENDPOINT). Access
// keys are disabled: the service publishes with its identity (EventGrid Data Sender).
param name string
param location string
param tags object = {}

resource topic 'Microsoft.EventGrid/topics@2025-02-15' = {
  name: name
  location: location
  tags: tags
  // checkov:skip=CKV_AZURE_193:the topic's endpoint stays public (publishing needs an Entra token: local auth is off); a private endpoint for it is not part of the private-network option (docs/DEPLOY.md)
  // For subscribers that deliver or dead-letter with the topic's identity (docs/EVENTS.md).
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: 'EventGridSchema'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

output name string = topic.name
output id string = topic.id
output endpoint string = topic.properties.endpoint

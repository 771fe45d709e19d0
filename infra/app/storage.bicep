// The Functions host storage, also holding the rotation state (tables), the fan-out queue, the
// deployment package and dead-lettered Key Vault events. Shared keys are disabled: every client
// (host, app, deployment, Event Grid dead-lettering) authenticates with Entra ID.
param name string
param location string
param tags object = {}
param deploymentContainerName string
param deadLetterContainerName string
param tableNames array
param queueNames array

@description('Private-network option: public network access off; reached only through private endpoints (blob, queue, table).')
param privateNetwork bool = false

@description('Replication; LRS by default (see the suppression below), ZRS/GZRS where the region offers them.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param skuName string = 'Standard_LRS'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35:default deny is set when privateNetwork is true (tests/infra/test_private_network.py); off by default, where the Flex app reaches its host storage over the public endpoint with Entra ID (shared keys are off)
  // checkov:skip=CKV_AZURE_59:public network access is Disabled when privateNetwork is true (tests/infra/test_private_network.py); the default deployment has no VNet to reach a private endpoint from
  // checkov:skip=CKV_AZURE_206:skuName chooses the replication; LRS by default because the state is re-derived by adoption, history is mirrored in the traces, and ZRS is not offered in every Flex Consumption region
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: privateNetwork ? 'Disabled' : 'Enabled'
    // AzureServices: Event Grid dead-letters Key Vault events here with its own identity (trusted service).
    networkAcls: {
      defaultAction: privateNetwork ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for tableName in tableNames: {
  parent: tableService
  name: tableName
}]

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queueName in queueNames: {
  parent: queueService
  name: queueName
}]

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob

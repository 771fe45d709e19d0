// Entry point for `azd up`: one resource group with the rotation service, plus the role assignments it
// needs on resources that may live elsewhere (an existing Key Vault, the target AI services accounts).
// Plain resources only (no registry modules), so the templates build offline.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; used to derive unique resource names.')
param environmentName string

@minLength(1)
@description('Region for every resource (must offer Flex Consumption).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group to create; default rg-<environmentName>.')
param resourceGroupName string = ''

// ---- What to rotate -------------------------------------------------------------------------------

@description('Explicit list (small setups): ARM resource ids of the Microsoft.CognitiveServices/accounts to rotate (any resource group, any subscription the deployer can assign roles in). One role assignment per account, so keep it short; a fleet uses discovery instead. Give this, discovery scopes, or both.')
param targetResourceIds array = []

@description('Discovery: subscriptions whose accounts tagged discoveryTag are rotated. The custom role is assigned once per subscription, whatever the number of accounts.')
param discoverySubscriptionIds array = []

@description('Discovery, narrower: resource groups as "subscriptionId/resourceGroupName". The custom role is assigned once per resource group.')
param discoveryResourceGroups array = []

@description('Consumers the service refreshes after a swap and reads before retiring the old key (docs/ENGINE.md "Consumers"): ARM ids of App Service sites and API Management named values, as declared in the targets\' consumers or key-rotation-consumer tags. The Consumer Refresher role is assigned on each site / API Management service, nothing wider.')
param consumerResourceIds array = []

@description('Discovery, widest: a management group id (not its display name). The custom role is assigned once at the management group, so every subscription under it, present and future, is listed (ROTATION_DISCOVERY_SCOPES stays empty: every subscription the identity can see). One management group per deployment.')
param discoveryManagementGroupId string = ''

@description('Discovery: the name=value tag that opts an account in (ROTATION_DISCOVERY_TAG).')
param discoveryTag string = 'key-rotation=enabled'

@description('Rotation period of every target (ISO 8601 duration).')
param rotationPeriod string = 'P30D'

@description('Key Vault secret writes per vault per 10 s, shared by every instance (at most 250, which leaves Key Vault\'s 300 room for the time between taking a token and writing).')
@minValue(1)
@maxValue(250)
param keyVaultSecretWritesPer10s int = 250

@description('Table of the fleet-wide write budgets.')
param budgetTableName string = 'rotationbudgets'

@description('Drain time between the swap and regenerating the old key (ISO 8601 duration); at least the longest consumer cache TTL. Default PT30H: App Service Key Vault references refetch every 24 h, plus a margin (docs/ENGINE.md "Consumers").')
param drainTime string = 'PT30H'

@description('How a new key is verified before the swap.')
@allowed([
  'dataplane'
  'none'
])
param verifyMode string = 'dataplane'

// ---- Engine tuning (app settings; defaults equal the app defaults) -------------------------------

@description('NCRONTAB schedule of the sweep timer.')
param rotationSchedule string = '0 */15 * * * *'

@description('Timer enqueues due targets on the fan-out queue instead of rotating in-process.')
param rotationFanout bool = false

@description('Targets advanced at once by one sweep.')
@minValue(1)
param sweepConcurrency int = 16

@description('true: the SDKs\' asynchronous clients on one event loop do the HTTP (less CPU per call); false: the synchronous clients.')
param asyncIo bool = true

@description('regenerateKey calls per second per subscription (ARM allows about 10/s).')
@minValue(1)
param armWritesPerSecond int = 5

@description('regenerateKey burst per subscription (ARM allows about 200).')
@minValue(1)
param armWriteBurst int = 100

@description('How long a new key may take to be accepted before the cycle fails (ISO 8601 duration).')
param verifyTimeout string = 'PT10M'

@description('Drain used by an emergency rotation (ISO 8601 duration).')
param emergencyDrainTime string = 'PT0S'

@description('Table holding one state entity per target.')
param stateTableName string = 'rotationstate'

@description('Append-only table of transitions.')
param historyTableName string = 'rotationhistory'

@description('Queue of rotation requests used by the fan-out.')
param rotationQueueName string = 'rotation-requests'

@description('Pause rotation: the host ignores the timer, Key Vault event and queue triggers (the admin API still answers).')
param disableRotation bool = false

// ---- Key Vault ---------------------------------------------------------------------------------------

@description('Use this existing vault (RBAC mode) instead of creating one; empty = create a vault.')
param existingKeyVaultName string = ''

@description('Resource group of the existing vault; empty = the service resource group.')
param existingKeyVaultResourceGroupName string = ''

// ---- Optional features ---------------------------------------------------------------------------

@description('Create an Event Grid custom topic that receives KeyRotation.* lifecycle events.')
param enableLifecycleTopic bool = false

@description('Put App Service Authentication (Microsoft Entra ID) in front of the admin API.')
param enableAdminAuth bool = false

@description('Client id of the Entra app registration whose tokens the admin API accepts (enableAdminAuth).')
param adminAuthClientId string = ''

@description('Entra app role an admin token must carry (enableAdminAuth).')
param adminRole string = 'KeyRotation.Admin'

@description('Existing action group notified by the alerts; empty = none.')
param alertActionGroupResourceId string = ''

@description('E-mail address for a new action group created for the alerts; empty = none.')
param alertEmailAddress string = ''

@secure()
@description('JSON array of webhook URLs (Teams Workflows, Slack or any HTTPS receiver) added to the alerts\' new action group; empty = none. Secure: an incoming-webhook URL is a credential.')
param alertWebhookUrls string = ''

// ---- Private network (docs/DEPLOY.md "Private network") -------------------------------------------

@description('VNet integration for the Function App, private endpoints and private DNS zones for Key Vault and Storage, public network access off on both.')
param enablePrivateNetwork bool = false

@description('Address space of the VNet (enablePrivateNetwork).')
param vnetAddressPrefix string = '10.40.0.0/16'

@description('Subnet of the Function App\'s VNet integration, at least /27 (enablePrivateNetwork).')
param appSubnetPrefix string = '10.40.0.0/24'

@description('Subnet of the private endpoints (enablePrivateNetwork).')
param privateEndpointSubnetPrefix string = '10.40.1.0/24'

@description('Also create the Azure AI services private DNS zones (cognitiveservices, openai, services.ai) linked to the VNet, for target accounts\' private endpoints (enablePrivateNetwork).')
param createAiServicesDnsZones bool = true

// ---- Hosting ---------------------------------------------------------------------------------------

@description('Flex Consumption instance memory.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Flex Consumption scale-out limit; rotation is not latency sensitive, so keep it small.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var createKeyVault = empty(existingKeyVaultName)
var keyVaultName = createKeyVault ? 'kv-${resourceToken}' : existingKeyVaultName
var serviceResourceGroupName = !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
var keyVaultResourceGroupName = createKeyVault || empty(existingKeyVaultResourceGroupName) ? serviceResourceGroupName : existingKeyVaultResourceGroupName
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'
var deadLetterContainerName = 'key-vault-events-dead-letter'
var keyVaultId = resourceId(subscription().subscriptionId, keyVaultResourceGroupName, 'Microsoft.KeyVault/vaults', keyVaultName)

// Private endpoints of the private-network option: the vault and the three storage services the
// Functions host and the app use (blob: leases, deployment package; queue: fan-out; table: state).
var storageEndpoints = [
  'blob'
  'queue'
  'table'
]

// The triggers that rotate without a human asking (function_app.py); disableRotation turns them off.
var automaticRotationFunctions = [
  'sweep_timer'
  'key_vault_events'
  'rotate_from_queue'
]

// The targets as the app reads them (ROTATION_TARGETS); secretPrefix defaults to the account name.
var rotationTargets = map(targetResourceIds, id => {
  resourceId: id
  rotationPeriod: rotationPeriod
  drainTime: drainTime
  verify: verifyMode
})

// A custom role needs every subscription it is assigned in among its assignable scopes.
var targetSubscriptionScopes = map(targetResourceIds, id => '/subscriptions/${split(id, '/')[2]}')

// Discovery: the subscriptions to list accounts in (those of the resource groups too: ARM lists only the
// accounts the identity may read, so a resource-group assignment narrows the listing to that group).
var discoveryBySubscription = !empty(discoverySubscriptionIds)
var discoveryByGroup = !empty(discoveryResourceGroups)
var discoveryByManagementGroup = !empty(discoveryManagementGroupId)
var discoveryEnabled = discoveryBySubscription || discoveryByGroup || discoveryByManagementGroup
var discoverySubscriptions = union(discoverySubscriptionIds, map(discoveryResourceGroups, g => split(g, '/')[0]))
var discoverySubscriptionScopes = map(discoverySubscriptions, sub => '/subscriptions/${sub}')
// A custom role's assignable scopes may name a management group (only without dataActions, which it has none of).
var discoveryManagementGroupScopes = discoveryByManagementGroup ? ['/providers/Microsoft.Management/managementGroups/${discoveryManagementGroupId}'] : []

// Every app setting the app validates (shared/settings.py); platform settings are added by the
// function-app module. Disabled features leave their setting unset so the app sees them off.
var rotationAppSettings = {
  KEY_VAULT_URL: keyVaultAccess.outputs.vaultUri
  ARM_ENDPOINT: armEndpoint
  AZURE_CLIENT_ID: identity.outputs.clientId
  ROTATION_SCHEDULE: rotationSchedule
  ROTATION_STATE_TABLE: stateTableName
  ROTATION_HISTORY_TABLE: historyTableName
  ROTATION_QUEUE: rotationQueueName
  ROTATION_FANOUT: rotationFanout ? 'true' : 'false'
  SWEEP_CONCURRENCY: string(sweepConcurrency)
  ROTATION_ASYNC_IO: asyncIo ? 'true' : 'false'
  ARM_WRITES_PER_SECOND: string(armWritesPerSecond)
  ARM_WRITE_BURST: string(armWriteBurst)
  KEY_VAULT_SECRET_WRITES_PER_10S: string(keyVaultSecretWritesPer10s)
  ROTATION_BUDGET_TABLE: budgetTableName
  ROTATION_DISCOVERY: discoveryEnabled ? 'true' : 'false'
  VERIFY_TIMEOUT: verifyTimeout
  EMERGENCY_DRAIN_TIME: emergencyDrainTime
}
var adminAuthAppSettings = enableAdminAuth ? {
  ADMIN_ROLE: adminRole
} : {}
var lifecycleAppSettings = enableLifecycleTopic ? {
  ROTATION_EVENTS_TOPIC_ENDPOINT: lifecycleTopic.outputs.endpoint
} : {}
var explicitTargets = !empty(targetResourceIds)
var explicitTargetAppSettings = explicitTargets ? {
  ROTATION_TARGETS: string(rotationTargets)
} : {}
var discoveryAppSettings = discoveryEnabled ? {
  // Under a management group the subscriptions are not known here: list every one the identity can see.
  ROTATION_DISCOVERY_SCOPES: discoveryByManagementGroup ? '' : join(discoverySubscriptions, ',')
  ROTATION_DISCOVERY_TAG: discoveryTag
} : {}
var appSettings = union(rotationAppSettings, explicitTargetAppSettings, discoveryAppSettings, adminAuthAppSettings, lifecycleAppSettings)

// environment() ends the URL with '/'; the app appends '/.default' to build its token scope.
var resourceManagerUrl = environment().resourceManager
var armEndpoint = endsWith(resourceManagerUrl, '/') ? substring(resourceManagerUrl, 0, length(resourceManagerUrl) - 1) : resourceManagerUrl

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: serviceResourceGroupName
  location: location
  tags: tags
}

// Least-privilege role for the targets: read the account, list and regenerate its keys - nothing else
// (Cognitive Services Contributor could also delete accounts and deployments).
resource keyRotatorRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'ai-services-key-rotator')
  properties: {
    // Role names are unique in the tenant: the subscription keeps two deployments with the same azd
    // environment name (in two subscriptions) from colliding (RoleDefinitionWithSameNameExists).
    roleName: 'AI Services Key Rotator (${environmentName}, ${subscription().subscriptionId})'
    description: 'Read Azure AI services accounts, list and regenerate their API keys. Used by the ai-key-rotation service.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.CognitiveServices/accounts/read'
          'Microsoft.CognitiveServices/accounts/listKeys/action'
          'Microsoft.CognitiveServices/accounts/regenerateKey/action'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: union([subscription().id], targetSubscriptionScopes, discoverySubscriptionScopes, discoveryManagementGroupScopes)
  }
}

// A custom role needs every subscription it is assigned in among its assignable scopes.
var consumerSubscriptionScopes = map(consumerResourceIds, id => '/subscriptions/${split(id, '/')[2]}')

// Second least-privilege role, assigned only on the declared consumers (never at a subscription): refresh
// an App Service site's Key Vault references or an API Management named value, and read what they
// resolved - nothing else (issue 14; docs/DEPLOY.md "Consumers" says which call needs which action).
resource consumerRefresherRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'ai-services-key-rotation-consumer-refresher')
  properties: {
    roleName: 'AI Services Key Rotation Consumer Refresher (${environmentName}, ${subscription().subscriptionId})'
    description: 'Refresh the Key Vault references of App Service sites and API Management named values, and read what they resolved. Used by the ai-key-rotation service.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Web/sites/config/Read'
          'Microsoft.Web/sites/config/Write'
          'Microsoft.ApiManagement/service/namedValues/read'
          'Microsoft.ApiManagement/service/namedValues/refreshSecret/action'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: union([subscription().id], consumerSubscriptionScopes)
  }
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module network 'app/network.bicep' = if (enablePrivateNetwork) {
  name: 'network'
  scope: rg
  params: {
    name: 'vnet-${resourceToken}'
    location: location
    tags: tags
    addressPrefix: vnetAddressPrefix
    appSubnetPrefix: appSubnetPrefix
    privateEndpointSubnetPrefix: privateEndpointSubnetPrefix
    createAiServicesDnsZones: createAiServicesDnsZones
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    privateNetwork: enablePrivateNetwork
    deploymentContainerName: deploymentContainerName
    deadLetterContainerName: deadLetterContainerName
    tableNames: [
      stateTableName
      historyTableName
    ]
    queueNames: [
      rotationQueueName
    ]
  }
}

module keyVault 'app/key-vault.bicep' = if (createKeyVault) {
  name: 'key-vault'
  scope: rg
  params: {
    name: keyVaultName
    location: location
    tags: tags
    privateNetwork: enablePrivateNetwork
  }
}

// The vault's private endpoint lives in the service resource group, next to the VNet; the vault may be
// an existing one elsewhere (its owner turns its public access off).
module keyVaultEndpoint 'app/private-endpoint.bicep' = if (enablePrivateNetwork) {
  name: 'private-endpoint-vault'
  scope: rg
  params: {
    name: 'pe-${keyVaultName}'
    location: location
    tags: tags
    subnetId: network.outputs.privateEndpointSubnetId
    targetResourceId: keyVaultId
    groupId: 'vault'
    privateDnsZoneId: network.outputs.keyVaultDnsZoneId
  }
  dependsOn: [
    keyVault
  ]
}

module storageEndpoint 'app/private-endpoint.bicep' = [for service in (enablePrivateNetwork ? storageEndpoints : []): {
  name: 'private-endpoint-${service}'
  scope: rg
  params: {
    name: 'pe-st${resourceToken}-${service}'
    location: location
    tags: tags
    subnetId: network.outputs.privateEndpointSubnetId
    targetResourceId: storage.outputs.id
    groupId: service
    privateDnsZoneId: (service == 'blob') ? network.outputs.blobDnsZoneId : ((service == 'queue') ? network.outputs.queueDnsZoneId : network.outputs.tableDnsZoneId)
  }
}]

module keyVaultAccess 'app/key-vault-access.bicep' = {
  name: 'key-vault-access'
  scope: resourceGroup(keyVaultResourceGroupName)
  params: {
    keyVaultName: keyVaultName
    systemTopicName: 'evgt-${keyVaultName}'
    principalId: identity.outputs.principalId
    tags: tags
  }
  dependsOn: [
    keyVault
  ]
}

module lifecycleTopic 'app/lifecycle-topic.bicep' = if (enableLifecycleTopic) {
  name: 'lifecycle-topic'
  scope: rg
  params: {
    name: 'evgt-lifecycle-${resourceToken}'
    location: location
    tags: tags
  }
}

module serviceRoles 'app/service-roles.bicep' = {
  name: 'service-roles'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    lifecycleTopicName: enableLifecycleTopic ? lifecycleTopic.outputs.name : ''
    deadLetterContainerName: deadLetterContainerName
    keyVaultEventsTopicPrincipalId: keyVaultAccess.outputs.systemTopicPrincipalId
  }
}

// One module per target, deployed into the target's own resource group.
module targetAccess 'app/target-access.bicep' = [for (targetId, index) in targetResourceIds: {
  name: 'target-access-${index}'
  scope: resourceGroup(split(targetId, '/')[2], split(targetId, '/')[4])
  params: {
    accountName: last(split(targetId, '/'))
    principalId: identity.outputs.principalId
    roleDefinitionGuid: keyRotatorRole.name
  }
}]

// One module per declared consumer, deployed into the consumer's own resource group.
module consumerAccess 'app/consumer-access.bicep' = [for (consumerId, index) in consumerResourceIds: {
  name: 'consumer-access-${index}'
  scope: resourceGroup(split(consumerId, '/')[2], split(consumerId, '/')[4])
  params: {
    consumerId: consumerId
    principalId: identity.outputs.principalId
    consumerRoleGuid: consumerRefresherRole.name
  }
}]

// Discovery: one module per subscription or resource group in scope - never per account, so onboarding
// any number of tagged accounts deploys the same resources (ARM allows 800 per deployment).
module discoverySubscriptionAccess 'app/discovery-subscription-access.bicep' = [for sub in discoverySubscriptionIds: {
  name: 'discovery-access-${sub}'
  scope: subscription(sub)
  params: {
    principalId: identity.outputs.principalId
    roleDefinitionGuid: keyRotatorRole.name
  }
}]

module discoveryGroupAccess 'app/discovery-group-access.bicep' = [for group in discoveryResourceGroups: {
  name: 'discovery-access-${uniqueString(group)}'
  scope: resourceGroup(split(group, '/')[0], split(group, '/')[1])
  params: {
    principalId: identity.outputs.principalId
    roleDefinitionGuid: keyRotatorRole.name
  }
}]

// Discovery under a management group: one assignment there, through a tenant-scoped hop (see the module).
module discoveryManagementGroupAccess 'app/discovery-tenant-hop.bicep' = if (discoveryByManagementGroup) {
  name: 'discovery-access-mg-${uniqueString(discoveryManagementGroupId)}'
  scope: tenant()
  params: {
    managementGroupId: discoveryManagementGroupId
    principalId: identity.outputs.principalId
    roleDefinitionGuid: keyRotatorRole.name
  }
}

module functionApp 'app/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    appSettings: appSettings
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    enableAdminAuth: enableAdminAuth
    adminAuthClientId: adminAuthClientId
    disabledFunctions: disableRotation ? automaticRotationFunctions : []
    virtualNetworkSubnetId: enablePrivateNetwork ? network.outputs.appSubnetId : ''
  }
  // The host must not start before it may use its storage, vault and telemetry (with the private
  // network option, before their private endpoints resolve).
  dependsOn: [
    serviceRoles
    keyVaultEndpoint
    storageEndpoint
  ]
}

module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    namePrefix: resourceToken
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    actionGroupResourceId: alertActionGroupResourceId
    alertEmailAddress: alertEmailAddress
    alertWebhookUrls: alertWebhookUrls
  }
}

module workbook 'app/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
  }
}

// azd stores these in the environment; the postdeploy hook reads them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_ID string = functionApp.outputs.id
output AZURE_FUNCTION_APP_URL string = functionApp.outputs.url
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output KEY_VAULT_NAME string = keyVaultName
output KEY_VAULT_URL string = keyVaultAccess.outputs.vaultUri
output KEY_VAULT_RESOURCE_GROUP string = keyVaultResourceGroupName
output KEY_VAULT_EVENTS_SYSTEM_TOPIC_NAME string = keyVaultAccess.outputs.systemTopicName
output DEAD_LETTER_STORAGE_ACCOUNT_ID string = storage.outputs.id
output DEAD_LETTER_CONTAINER_NAME string = deadLetterContainerName
output KEY_ROTATOR_ROLE_DEFINITION_ID string = keyRotatorRole.id
// With admin auth, the hook subscribes key_vault_events as a WebHook with Entra authentication for this
// app registration (docs/DEPLOY.md "Admin API authentication"); empty = AzureFunction destination.
output KEY_VAULT_EVENTS_ENTRA_APPLICATION string = enableAdminAuth ? adminAuthClientId : ''
output AZURE_VNET_ID string = enablePrivateNetwork ? network.outputs.vnetId : ''
output ROTATION_WORKBOOK_ID string = workbook.outputs.id
output ROTATION_EVENTS_TOPIC_ENDPOINT string = enableLifecycleTopic ? lifecycleTopic.outputs.endpoint : ''

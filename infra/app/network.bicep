// Private-network option (enablePrivateNetwork): a VNet with one subnet for the Function App's outbound
// VNet integration and one for private endpoints, network security groups on both, and the private DNS
// zones that make the vault, the storage account and (optionally) the target AI accounts resolve to
// private addresses inside the VNet. See docs/DEPLOY.md "Private network".
param name string
param location string
param tags object = {}

@description('Address space of the VNet.')
param addressPrefix string = '10.40.0.0/16'

@description('Subnet the Function App integrates with (Flex Consumption: delegated to Microsoft.App/environments).')
param appSubnetPrefix string = '10.40.0.0/24'

@description('Subnet holding the private endpoints of the vault, the storage account and any AI accounts.')
param privateEndpointSubnetPrefix string = '10.40.1.0/24'

@description('Also create the private DNS zones of Azure AI services accounts, so their private endpoints in this VNet resolve for the app.')
param createAiServicesDnsZones bool = true

var appSubnetName = 'snet-app'
var privateEndpointSubnetName = 'snet-private-endpoints'

// Private DNS zone names come from the cloud's own suffixes where Bicep exposes them (storage), and
// from Azure's documented zone list otherwise (docs/DEPLOY.md cites it).
var storageSuffix = environment().suffixes.storage
var serviceZones = [
  'privatelink.vaultcore.azure.net'
  'privatelink.blob.${storageSuffix}'
  'privatelink.queue.${storageSuffix}'
  'privatelink.table.${storageSuffix}'
]
// Azure AI services accounts (kinds AIServices, OpenAI, CognitiveServices, ...) register their private
// endpoints in these three zones.
var aiServicesZones = [
  'privatelink.cognitiveservices.azure.com'
  'privatelink.openai.azure.com'
  'privatelink.services.ai.azure.com'
]
var zoneNames = createAiServicesDnsZones ? concat(serviceZones, aiServicesZones) : serviceZones

// The app subnet carries only the app's outbound traffic; nothing may come in through it.
resource appNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${name}-app'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource privateEndpointNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${name}-pe'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: appSubnetName
        properties: {
          addressPrefix: appSubnetPrefix
          networkSecurityGroup: {
            id: appNsg.id
          }
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: privateEndpointSubnetName
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          networkSecurityGroup: {
            id: privateEndpointNsg.id
          }
          privateEndpointNetworkPolicies: 'Enabled'
        }
      }
    ]
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2024-06-01' = [for zoneName in zoneNames: {
  name: zoneName
  location: 'global'
  tags: tags
}]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = [for (zoneName, index) in zoneNames: {
  parent: zones[index]
  name: '${name}-link'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnet.id
    }
  }
}]

output vnetId string = vnet.id
output appSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, appSubnetName)
output privateEndpointSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, privateEndpointSubnetName)
output keyVaultDnsZoneId string = zones[0].id
output blobDnsZoneId string = zones[1].id
output queueDnsZoneId string = zones[2].id
output tableDnsZoneId string = zones[3].id
output dnsZoneNames array = zoneNames

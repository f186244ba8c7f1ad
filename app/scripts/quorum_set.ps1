# Configures the cluster quorum witness with Set-ClusterQuorum; WitnessType picks the parameter set.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][ValidateSet('file_share', 'cloud', 'disk', 'none')][string]$WitnessType,
    [string]$SharePath,
    [string]$AccountName,
    [object]$AccessKey,
    [string]$Endpoint,
    [string]$DiskName
)

$ErrorActionPreference = 'Stop'

function Assert-Value([string]$Value, [string]$What) {
    if ([string]::IsNullOrWhiteSpace($Value)) {
        throw ('{0} is required for a {1} witness.' -f $What, $WitnessType)
    }
}

Import-Module FailoverClusters
Write-Progress -Activity 'Set-ClusterQuorum' -Status ('Configuring a {0} witness' -f $WitnessType) -PercentComplete 20
switch ($WitnessType) {
    'file_share' {
        Assert-Value $SharePath 'SharePath'
        $settings = Set-ClusterQuorum -FileShareWitness $SharePath
    }
    'cloud' {
        Assert-Value $AccountName 'AccountName'
        $key = if ($AccessKey -is [securestring]) {
            [System.Net.NetworkCredential]::new('', $AccessKey).Password
        } else {
            [string]$AccessKey
        }
        Assert-Value $key 'AccessKey'
        $cloud = @{ CloudWitness = $true; AccountName = $AccountName; AccessKey = $key }
        if ($Endpoint) {
            $cloud.Endpoint = $Endpoint
        }
        $settings = Set-ClusterQuorum @cloud
    }
    'disk' {
        Assert-Value $DiskName 'DiskName'
        $settings = Set-ClusterQuorum -DiskWitness $DiskName
    }
    'none' {
        $settings = Set-ClusterQuorum -NoWitness
    }
}

[PSCustomObject]@{
    witness_type     = $WitnessType
    quorum_type      = [string]$settings.QuorumType
    witness_resource = if ($settings.QuorumResource) { [string]$settings.QuorumResource.Name } else { $null }
} | ConvertTo-Json -Compress -Depth 8

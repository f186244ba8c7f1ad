# Reads the domain controllers, the KDS root keys and the service account from Active Directory, read-only. It needs
# the ActiveDirectory module (feature RSAT-AD-PowerShell) and the operator's identity at a domain controller, so it runs
# by the operator route (CredSSP or task_run). It names no type from that module: an unloaded module's type in a catch
# ends a Windows PowerShell 5.1 script with TypeNotFound.
param(
    [Parameter(Mandatory = $true)][string]$ServiceAccount,
    [Parameter(Mandatory = $true)][string]$Domain
)

$ErrorActionPreference = 'Stop'
$utcFormat = 'yyyy-MM-ddTHH:mm:ssZ'
$errors = [ordered]@{}
$domainInfo = $null
$controllers = @()
$kdsKeys = @()
$gmsa = $null
$sam = ($ServiceAccount -split '\\')[-1]

try {
    Import-Module -Name ActiveDirectory -ErrorAction Stop
} catch {
    [PSCustomObject]@{
        now_utc            = (Get-Date).ToUniversalTime().ToString($utcFormat)
        domain             = $null
        domain_controllers = @()
        kds_root_keys      = @()
        gmsa               = $null
        errors             = [PSCustomObject]@{ module = [string]$_.Exception.Message }
    } | ConvertTo-Json -Compress -Depth 8
    return
}

Write-Progress -Activity 'Domain prerequisites' -Status 'Domain and domain controllers' -PercentComplete 10
try {
    $adDomain = Get-ADDomain -Server $Domain
    $domainInfo = [PSCustomObject]@{
        dns_root = $adDomain.DNSRoot
        netbios  = $adDomain.NetBIOSName
        dn       = $adDomain.DistinguishedName
    }
    $controllers = @(Get-ADDomainController -Filter * -Server $Domain | ForEach-Object {
        [PSCustomObject]@{
            name       = $_.Name
            hostname   = $_.HostName
            os         = $_.OperatingSystem
            os_version = $_.OperatingSystemVersion
            site       = $_.Site
        }
    })
} catch {
    $errors['domain'] = [string]$_.Exception.Message
}

Write-Progress -Activity 'Domain prerequisites' -Status 'KDS root keys' -PercentComplete 40
try {
    $kdsKeys = @(Get-KdsRootKey | ForEach-Object {
        [PSCustomObject]@{
            key_id         = [string]$_.KeyId
            created        = $_.CreationTime.ToUniversalTime().ToString($utcFormat)
            effective_time = $_.EffectiveTime.ToUniversalTime().ToString($utcFormat)
        }
    })
} catch {
    $errors['kds'] = [string]$_.Exception.Message
}

Write-Progress -Activity 'Domain prerequisites' -Status 'Service account' -PercentComplete 70
try {
    $properties = @('PrincipalsAllowedToRetrieveManagedPassword', 'AccountNotDelegated',
        'ServicePrincipalNames', 'MemberOf', 'Enabled', 'DNSHostName')
    $account = Get-ADServiceAccount -Identity $sam -Server $Domain -Properties $properties
    $principals = @(foreach ($dn in $account.PrincipalsAllowedToRetrieveManagedPassword) {
        $entry = Get-ADObject -Identity $dn -Server $Domain -Properties sAMAccountName
        $members = @()
        if ($entry.ObjectClass -eq 'group') {
            $members = @(Get-ADGroupMember -Identity $dn -Recursive -Server $Domain |
                ForEach-Object { $_.SamAccountName })
        }
        [PSCustomObject]@{ sam = [string]$entry.sAMAccountName; class = [string]$entry.ObjectClass; members = $members }
    })
    $groups = @(foreach ($groupDn in $account.MemberOf) { (Get-ADGroup -Identity $groupDn -Server $Domain).Name })
    $domainAdmins = @()
    if ($adDomain) {
        $adminsSid = $adDomain.DomainSID.Value + '-512'
        $domainAdmins = @(Get-ADGroupMember -Identity $adminsSid -Recursive -Server $Domain |
            ForEach-Object { $_.SamAccountName })
    }
    $gmsa = [PSCustomObject]@{
        found                 = $true
        sam                   = $account.SamAccountName
        enabled               = [bool]$account.Enabled
        account_not_delegated = [bool]$account.AccountNotDelegated
        dns_host_name         = $account.DNSHostName
        principals            = $principals
        spns                  = @($account.ServicePrincipalNames)
        member_of             = $groups
        domain_admin          = ($domainAdmins -contains $account.SamAccountName)
    }
} catch {
    # Compared by name: naming the type would need it resolved.
    if ($_.Exception.GetType().Name -eq 'ADIdentityNotFoundException') {
        $gmsa = [PSCustomObject]@{ found = $false; sam = $sam }
    } else {
        $errors['gmsa'] = [string]$_.Exception.Message
    }
}
Write-Progress -Activity 'Domain prerequisites' -Status 'Done' -PercentComplete 100 -Completed

[PSCustomObject]@{
    now_utc            = (Get-Date).ToUniversalTime().ToString($utcFormat)
    domain             = $domainInfo
    domain_controllers = $controllers
    kds_root_keys      = $kdsKeys
    gmsa               = $gmsa
    errors             = [PSCustomObject]$errors
} | ConvertTo-Json -Compress -Depth 8

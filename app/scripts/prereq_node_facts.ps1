# Reads, without changing anything, what the prerequisite checks need to know about this node. Local only: nothing
# here needs the operator's identity on another machine (Active Directory and SQL logins have their own scripts).
param(
    [Parameter(Mandatory = $true)][string]$SqlHost,
    [int]$SqlPort = 1433
)

$ErrorActionPreference = 'Stop'

function Get-PendingReboot {
    $reasons = @()
    if (Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending') {
        $reasons += 'Component Based Servicing'
    }
    if (Test-Path -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired') {
        $reasons += 'Windows Update'
    }
    $sessionManager = Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager' -ErrorAction SilentlyContinue
    if ($sessionManager -and $sessionManager.PendingFileRenameOperations) {
        $reasons += 'Pending file rename operations'
    }
    [PSCustomObject]@{ pending = ($reasons.Count -gt 0); reasons = @($reasons) }
}

function Get-InstalledAms {
    $key = 'HKLM:\SOFTWARE\Lithnet\Access Manager Service'
    $registryVersion = $null
    if (Test-Path -LiteralPath $key) {
        $registryVersion = (Get-ItemProperty -LiteralPath $key -ErrorAction SilentlyContinue).Version
    }
    $uninstall = Get-ChildItem -LiteralPath 'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall' |
        Get-ItemProperty -ErrorAction SilentlyContinue |
        Where-Object { $_.DisplayName -eq 'Lithnet Access Manager Service' } |
        Select-Object -First 1
    $service = Get-CimInstance -ClassName Win32_Service -Filter "Name='lithnetams'"
    $serviceInfo = $null
    if ($service) {
        $serviceInfo = [PSCustomObject]@{
            status     = [string]$service.State
            start_mode = [string]$service.StartMode
            account    = $service.StartName
            image_path = $service.PathName
        }
    }
    [PSCustomObject]@{
        installed         = [bool]($registryVersion -or $uninstall -or $service)
        registry_version  = $registryVersion
        display_version   = $(if ($uninstall) { $uninstall.DisplayVersion } else { $null })
        service           = $serviceInfo
    }
}

function Test-SqlPort {
    $probe = Test-NetConnection -ComputerName $SqlHost -Port $SqlPort -WarningAction SilentlyContinue
    [PSCustomObject]@{ host = $SqlHost; port = $SqlPort; tcp = [bool]$probe.TcpTestSucceeded }
}

Write-Progress -Activity 'Prerequisites' -Status 'Operating system and features' -PercentComplete 10
$os = Get-CimInstance -ClassName Win32_OperatingSystem
$computer = Get-CimInstance -ClassName Win32_ComputerSystem
$feature = Get-WindowsFeature -Name 'Failover-Clustering'
$adModule = Get-WindowsFeature -Name 'RSAT-AD-PowerShell'
$pending = Get-PendingReboot
if ([string]$feature.InstallState -eq 'InstallPending') {
    $pending = [PSCustomObject]@{ pending = $true; reasons = @($pending.reasons) + 'Failover-Clustering install' }
}
Write-Progress -Activity 'Prerequisites' -Status 'Access Manager' -PercentComplete 40
$ams = Get-InstalledAms
Write-Progress -Activity 'Prerequisites' -Status 'SQL Server port' -PercentComplete 70
$sql = Test-SqlPort
Write-Progress -Activity 'Prerequisites' -Status 'Done' -PercentComplete 100 -Completed

[PSCustomObject]@{
    computer_name  = $env:COMPUTERNAME
    domain         = $computer.Domain
    part_of_domain = [bool]$computer.PartOfDomain
    os             = [PSCustomObject]@{
        caption      = $os.Caption
        version      = $os.Version
        build        = $os.BuildNumber
        product_type = $os.ProductType
    }
    feature        = [PSCustomObject]@{ name = 'Failover-Clustering'; install_state = [string]$feature.InstallState }
    ad_module      = [PSCustomObject]@{ name = 'RSAT-AD-PowerShell'; install_state = [string]$adModule.InstallState }
    pending_reboot = $pending
    ams            = $ams
    sql            = $sql
} | ConvertTo-Json -Compress -Depth 8

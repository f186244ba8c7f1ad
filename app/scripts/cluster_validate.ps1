# Runs Test-Cluster on the given nodes (inventory, network, system configuration) and returns its warnings and the HTML report; the wizard reads the verdict.
[CmdletBinding()]
param(
    [Parameter(Mandatory)][ValidateCount(1, 64)][string[]]$Node,
    [ValidateRange(1024, 67108864)][int]$MaxReportBytes = 8388608
)

$ErrorActionPreference = 'Stop'

Import-Module FailoverClusters
$reportDir = Join-Path $env:SystemRoot 'Cluster\Reports'
New-Item -ItemType Directory -Path $reportDir -Force | Out-Null
$reportBase = Join-Path $reportDir ('AmsClusterWizard-{0:yyyyMMdd-HHmmss}' -f (Get-Date))

Write-Progress -Activity 'Test-Cluster' -Status ('Validating {0}' -f ($Node -join ', ')) -PercentComplete 5
$testWarnings = @()
$report = Test-Cluster -Node $Node -Include 'Inventory', 'Network', 'System Configuration' `
    -ReportName $reportBase -WarningVariable testWarnings
Write-Progress -Activity 'Test-Cluster' -Status 'Reading the report' -PercentComplete 95

$reportPath = if ($report) { [string]@($report)[0].FullName } else { $reportBase + '.htm' }
$html = $null
$truncated = $false
if (Test-Path -LiteralPath $reportPath) {
    $html = Get-Content -LiteralPath $reportPath -Raw
    if ($html.Length -gt $MaxReportBytes) {
        $html = $html.Substring(0, $MaxReportBytes)
        $truncated = $true
    }
}

[PSCustomObject]@{
    warnings         = @($testWarnings | ForEach-Object { [string]$_.Message })
    report_path      = $reportPath
    report_html      = $html
    report_truncated = $truncated
} | ConvertTo-Json -Compress -Depth 8

# Runs Test-Cluster on the given nodes (inventory, network, system configuration) and returns the outcome with the HTML report.
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

# Test-Cluster names each test with a warning or failure as "<Category> - <Test>: <message>",
# and ends with a "Test Result:" summary such as ClusterConditionallyApproved.
$messages = @($testWarnings | ForEach-Object { [string]$_.Message })
$issues = @(foreach ($text in $messages) {
        if ($text -match '^(?<test>[^:\r\n]+ - [^:\r\n]+):\s*(?<message>.+)$') {
            $severity = if ($Matches['message'] -match 'fail') { 'failure' } else { 'warning' }
            [ordered]@{ test = $Matches['test'].Trim(); severity = $severity; message = $Matches['message'].Trim() }
        }
    })
$summaryText = ($messages | Where-Object { $_ -match 'Test Result' }) -join ' '
$failed = @($issues | Where-Object { $_.severity -eq 'failure' }).Count -gt 0 -or
    $summaryText -match 'NotApproved|Failed'
$outcome = if ($failed) { 'failed' } elseif ($issues.Count -gt 0 -or $summaryText -match 'Conditionally') { 'warnings' } else { 'passed' }

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
    outcome          = $outcome
    test_result      = $summaryText
    issues           = $issues
    report_path      = $reportPath
    report_html      = $html
    report_truncated = $truncated
} | ConvertTo-Json -Compress -Depth 8

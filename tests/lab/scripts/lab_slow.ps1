param(
    [double]$Seconds = 2,

    [switch]$Quiet
)

$deadline = (Get-Date).AddSeconds($Seconds)
while ((Get-Date) -lt $deadline) {
    if (-not $Quiet) { Write-Progress -Activity 'Slow' -Status 'waiting' -PercentComplete 50 }
    Start-Sleep -Milliseconds 200
}
[PSCustomObject]@{ slept = $Seconds } | ConvertTo-Json -Compress

param(
    [string]$Anything
)

Get-Date | ConvertTo-Json -Compress

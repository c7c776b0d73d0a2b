"""Elder care (爱心敲门, 低龄助高龄): elder profiles, ability assessments, care tiers, volunteers, pairs, visits, campaigns and the time bank."""

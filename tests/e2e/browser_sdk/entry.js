// The page's analytics.js: the real @segment/analytics-next, pointed at leadflow's intake with
// no Segment account (settings given inline, so nothing is fetched from Segment's CDN).
import { AnalyticsBrowser } from '@segment/analytics-next'

window.loadLeadflowAnalytics = (writeKey, apiHost) =>
  AnalyticsBrowser.load({
    writeKey,
    cdnSettings: { integrations: { 'Segment.io': { apiKey: writeKey, apiHost, protocol: 'http' } } },
  })
